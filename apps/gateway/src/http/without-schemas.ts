import type { FastifyServerOptions } from 'fastify';

const refuse = () => () => {
  throw new Error('this Fastify app is built without JSON schema support (see http/without-schemas.ts)');
};

/**
 * For the gateway's Fastify apps, which declare no JSON schema: without a compilers factory of its own, Fastify
 * loads ajv and fast-json-stringify when the app is built (~3 MiB of idle RSS) for schemas that never come.
 * A route given a schema fails at start with the error above.
 */
export const withoutSchemas: Pick<FastifyServerOptions, 'schemaController'> = {
  schemaController: { compilersFactory: { buildValidator: refuse, buildSerializer: refuse } },
};
