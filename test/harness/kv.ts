import type { CharmClient } from './charm-cli.ts';

/**
 * `charm kv set` on `writer`, then `kv sync` + `kv get` on each reader until they see the value.
 *
 * The stock client (v0.12.6, kv.Set) commits to its local Badger DB asynchronously and uploads the backup for that
 * seq right away, so now and then the backup misses the value it was made for, on any server, gateway or not.
 * A person would set it again; so does this, up to three times, and reports how often it had to.
 */
export async function kvSetSeenBy(
  writer: CharmClient,
  readers: readonly CharmClient[],
  key: string,
  value: string,
): Promise<{ attempts: number }> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    await writer.run(['kv', 'set', key, value]);
    let seen = true;
    for (const reader of readers) {
      await reader.run(['kv', 'sync']);
      const got = await reader.attempt(['kv', 'get', key]);
      if (got.code !== 0 || got.stdout.trim() !== value) seen = false;
    }
    if (seen) {
      if (attempt > 1)
        console.log(`kv ${key}: the client's backup missed the value ${attempt - 1} time(s); set again`);
      return { attempts: attempt };
    }
  }
  throw new Error(
    `kv ${key}=${value} set by ${writer.dataDir} never reached ${readers.map((r) => r.dataDir).join(', ')}`,
  );
}
