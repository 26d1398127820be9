import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startScratchRedis } from '@cring/local-cluster';
import type { Redis } from 'ioredis';
import { hashInChunks, prefixGlob, SCAN_CHUNK_FIELDS, setInChunks } from './chunked-reads.ts';
import { encodeEntry } from './entries.ts';
import { manifestKeys } from './keys.ts';
import { createManifest, type Manifest } from './manifest.ts';
import { commitLocked, deleteLocked } from './test-commits.ts';

let server: Awaited<ReturnType<typeof startScratchRedis>>;
let redis: Redis;
let manifest: Manifest;
before(async () => {
  server = await startScratchRedis();
  redis = server.redis;
  manifest = createManifest(redis);
});
after(async () => server.stop());

let userCounter = 0;
const newUser = () => `chunked-user-${++userCounter}`;
const file = (holders = ['a']) => ({ sha256: 'ab'.repeat(32), size: 3, mode: 420, holders });

/** How often Redis ran each command since the server started (INFO commandstats). */
async function commandCalls(): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const out = new Map<string, number>();
  for (const match of info.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g))
    out.set(match[1] as string, Number(match[2]));
  return out;
}

/** The commands (and how often) Redis ran while `run` ran. */
async function commandsDuring(run: () => Promise<unknown>): Promise<Map<string, number>> {
  const before_ = await commandCalls();
  await run();
  const after_ = await commandCalls();
  const out = new Map<string, number>();
  for (const [name, calls] of after_) {
    const added = calls - (before_.get(name) ?? 0) - (name === 'info' ? 1 : 0);
    if (added > 0) out.set(name, added);
  }
  return out;
}

/** A user with `count` file entries below /big (written directly, as many commits would leave them). */
async function bigUser(count: number): Promise<string> {
  const charmId = newUser();
  for (let first = 0; first < count; first += 1000) {
    const fields: string[] = [];
    for (let k = first; k < Math.min(count, first + 1000); k++) {
      fields.push(
        `/big/d${k % 10}/f${k}`,
        encodeEntry({
          kind: 'file',
          version: k + 1,
          sha256: 'cd'.repeat(32),
          size: 1,
          mode: 420,
          holders: ['a'],
          atMs: 1,
        }),
      );
    }
    await redis.hset(manifestKeys.entries(charmId), ...fields);
  }
  await redis.set(manifestKeys.version(charmId), String(count));
  return charmId;
}

describe('whole-user reads in chunks', () => {
  it('entriesWithin reads a large user with HSCAN steps, never one HGETALL, and misses nothing', async () => {
    const charmId = await bigUser(5 * SCAN_CHUNK_FIELDS);
    let entries: Awaited<ReturnType<Manifest['entriesWithin']>> | undefined;
    const commands = await commandsDuring(async () => {
      entries = await manifest.entriesWithin(charmId);
    });
    assert.equal(entries?.size, 5 * SCAN_CHUNK_FIELDS);
    assert.equal(commands.get('hgetall'), undefined, `commands: ${JSON.stringify([...commands])}`);
    assert.ok((commands.get('hscan') ?? 0) >= 5, `commands: ${JSON.stringify([...commands])}`);
  });

  it('entriesWithin of a prefix returns exactly the entries within it, special characters included', async () => {
    const u = newUser();
    const inside = ['/a*[b]?\\', '/a*[b]?\\/x', '/a*[b]?\\/y/z'];
    const outside = ['/a*[b]?\\x', '/a', '/aa*[b]?\\/x', '/b/a*[b]?\\'];
    for (const path of [...inside, ...outside]) await commitLocked(manifest, u, path, file());
    const entries = await manifest.entriesWithin(u, '/a*[b]?\\');
    assert.deepEqual([...entries.keys()].sort(), [...inside].sort());
  });

  it('entriesWithin still hides what an unfinished sweep covers', async () => {
    const u = newUser();
    await commitLocked(manifest, u, '/dir/a', file());
    await commitLocked(manifest, u, '/dir/b', file());
    await deleteLocked(manifest, u, '/dir', ['a']);
    await commitLocked(manifest, u, '/dir/c', file());
    // A crashed delete: its sweep record is back and a covered entry was not removed yet.
    const version = Number(await redis.hget(manifestKeys.sweeps(u), '/dir')) || 3;
    await redis.hset(manifestKeys.sweeps(u), '/dir', String(version));
    await redis.hset(
      manifestKeys.entries(u),
      '/dir/a',
      encodeEntry({
        kind: 'file',
        version: 1,
        sha256: 'ab'.repeat(32),
        size: 3,
        mode: 420,
        holders: ['a'],
        atMs: 1,
      }),
    );
    const entries = await manifest.entriesWithin(u, '/dir');
    assert.deepEqual([...entries.keys()].sort(), ['/dir', '/dir/c']);
  });

  it('pending markers, intents, sweeps and users are read in steps too', async () => {
    const charmId = newUser();
    for (let i = 0; i < 3 * SCAN_CHUNK_FIELDS; i++) await manifest.addPending(charmId, 'b1', `job-${i}`);
    const commands = await commandsDuring(async () => {
      assert.equal((await manifest.pendingJobs(charmId)).length, 3 * SCAN_CHUNK_FIELDS);
      await manifest.intents(charmId);
      await manifest.finishSweeps(charmId);
      assert.ok((await manifest.users()).length > 0);
    });
    assert.equal(commands.get('hgetall'), undefined, `commands: ${JSON.stringify([...commands])}`);
    assert.equal(commands.get('smembers'), undefined, `commands: ${JSON.stringify([...commands])}`);
  });

  it('the chunked readers return each field once even when a step returns it again', async () => {
    const key = `chunked-test-set-${newUser()}`;
    await redis.sadd(key, ...Array.from({ length: 2000 }, (_, i) => `m${i}`));
    const members = await setInChunks(redis, key, 10);
    assert.equal(members.length, 2000);
    assert.equal(new Set(members).size, 2000);
    const hashKey = `chunked-test-hash-${newUser()}`;
    await redis.hset(hashKey, ...Array.from({ length: 2000 }, (_, i) => [`f${i}`, String(i)]).flat());
    const all = await hashInChunks(redis, hashKey, { count: 10 });
    assert.equal(all.size, 2000);
    assert.equal(all.get('f1999'), '1999');
  });

  it('prefixGlob escapes the glob characters of a path', () => {
    assert.equal(prefixGlob('/a*b?c[d]e\\f'), '/a\\*b\\?c\\[d\\]e\\\\f*');
  });
});
