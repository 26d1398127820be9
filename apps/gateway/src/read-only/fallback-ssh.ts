import type { Socket } from 'node:net';
import { mintCharmJwt, type ServerKey } from '@cring/charm';
import type { Logger } from '@cring/service-runtime';
import ssh2 from 'ssh2';
import type { AccountLookup } from './account-lookup.ts';

const { Server, utils } = ssh2;

/**
 * An encrypt key's created_at as charm's SQLite holds it ('2026-11-25 09:12:17', or Go's
 * '2026-11-25 09:12:17.895 +0000 UTC') as Go's JSON time (RFC 3339), which the charm client parses.
 */
export function rfc3339(sqlTime: string | number | null): string | number | null {
  if (typeof sqlTime !== 'string') return sqlTime;
  const match = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d(?:\.\d+)?)(?:\s*([+-])(\d\d):?(\d\d))?/.exec(sqlTime);
  if (!match) return sqlTime;
  const [, date, time, sign, hours, minutes] = match;
  return `${date}T${time}${sign ? `${sign}${hours}:${minutes}` : 'Z'}`;
}

/**
 * The read-only SSH answer used only when no backend accepts SSH: it authenticates the user's own key (the
 * signature is checked here, nothing is relayed), finds their account in the synced account state, and answers
 * `api-auth`, `id` and `jwt` with tokens minted by the cluster key, so `charm fs cat/ls` can read from the S3
 * backup. Every other command (new accounts, links) is refused: they need a backend.
 */
export function createFallbackSsh(options: {
  key: ServerKey;
  /** The same key as an OpenSSH private key file's text (the form ssh2 reads), used as the host key. */
  hostKey: Buffer;
  issuer: string;
  /** What api-auth tells the client to use for HTTP: "https" when the gateway serves TLS. */
  httpScheme: 'http' | 'https';
  accounts: AccountLookup;
  logger: Logger;
}) {
  const log = options.logger.child({ component: 'ssh-fallback' });
  const server = new Server({ hostKeys: [options.hostKey], ident: 'SSH-2.0-OpenSSH_7.6p1' }, (client) => {
    let publicKey: string | undefined;
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      const parsed = utils.parseKey(ctx.key.data);
      if (parsed instanceof Error) return ctx.reject(['publickey']);
      // The offer without a signature is only a probe; the signed one proves the user holds the private key.
      if (ctx.signature && ctx.blob && !parsed.verify(ctx.blob, ctx.signature, ctx.hashAlgo))
        return ctx.reject(['publickey']);
      publicKey = `${ctx.key.algo} ${ctx.key.data.toString('base64')}`;
      ctx.accept();
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('exec', async (acceptExec, _reject, info) => {
          const channel = acceptExec();
          const [command, ...args] = info.command.trim().split(/\s+/);
          const user = publicKey
            ? await options.accounts.userForKey(publicKey).catch(() => undefined)
            : undefined;
          if (!user || !publicKey) {
            channel.stderr.write(
              'charmed ring is read-only (no backend reachable) and does not know this key\n',
            );
            channel.exit(1);
            channel.end();
            return;
          }
          const jwt = (audience?: string[]) =>
            mintCharmJwt({
              key: options.key,
              issuer: options.issuer,
              charmId: user.charmId,
              ttlSeconds: 3600,
              audience,
            });
          if (command === 'api-auth') {
            const encryptKeys = user.keys.find((k) => k.publicKey === publicKey)?.encryptKeys ?? [];
            const answer = {
              jwt: jwt(),
              charm_id: user.charmId,
              http_scheme: options.httpScheme,
              public_key: publicKey,
              ...(encryptKeys.length > 0
                ? {
                    encrypt_keys: encryptKeys.map((k) => ({
                      id: k.globalId,
                      key: k.encryptedKey,
                      created_at: rfc3339(k.createdAt),
                    })),
                  }
                : {}),
            };
            channel.write(`${JSON.stringify(answer)}\n`);
          } else if (command === 'id') {
            channel.write(user.charmId);
          } else if (command === 'jwt') {
            channel.write(jwt(args.length > 0 ? args : undefined));
          } else {
            channel.stderr.write(
              `charmed ring is read-only (no backend reachable): "${command}" needs a backend\n`,
            );
            channel.exit(1);
            channel.end();
            return;
          }
          channel.exit(0);
          channel.end();
          log.info({ charmId: user.charmId, command }, 'answered SSH from the account backup (read-only)');
        });
      });
    });
    client.on('error', (err) => log.debug({ err: err.message }, 'fallback SSH client error'));
  });
  return {
    /** Serves one client connection that no backend could take. */
    accept(socket: Socket): void {
      server.injectSocket(socket);
    },
    close(): void {
      server.close();
    },
  };
}

export type FallbackSsh = ReturnType<typeof createFallbackSsh>;
