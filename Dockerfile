# One image for the gateway, replicator and healer; the compose file picks the command.
FROM node:24-bookworm
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY libs/ring/package.json libs/ring/
COPY libs/charm/package.json libs/charm/
COPY libs/service-runtime/package.json libs/service-runtime/
COPY apps/gateway/package.json apps/gateway/
COPY tools/local-cluster/package.json tools/local-cluster/
COPY test/package.json test/
RUN npm ci --omit=dev --ignore-scripts
COPY libs libs
COPY apps apps
COPY deploy deploy
USER node
CMD ["node", "apps/gateway/src/main.ts"]
