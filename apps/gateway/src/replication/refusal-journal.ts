/**
 * The gateway's local note of each refusal whose record Redis could not take yet (refusal-records.ts), so that a
 * gateway killed (or stopped) before Redis answered again does not forget it: the next gateway on this host
 * resumes the record at start. One small file per refusal in the spool folder, written and flushed before the
 * client's 503, removed once the record is settled. It holds the write intent (user, path, owners touched, the
 * entry it began over), never the user's token.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { WriteIntent } from '@cring/manifest';
import { processAlive } from '../spool/spool-dir.ts';

export interface JournaledRefusal {
  charmId: string;
  opened: WriteIntent;
  touched: string[];
  savedAtMs: number;
}

export interface RefusalJournal {
  /** Writes the refusal down (flushed to disk); returns its handle for `remove`. */
  save(refusal: Omit<JournaledRefusal, 'savedAtMs'>): Promise<string>;
  remove(handle: string): Promise<void>;
  /**
   * The refusals gateways that are gone left unsettled (their process ended; a file of this very process id is a
   * previous incarnation's, as in a container where the gateway is always the same pid). A file that cannot be
   * read whole (a gateway killed while writing it, before its client's answer) is reported in `unreadable` and
   * removed.
   */
  leftovers(): Promise<{ refusals: { handle: string; refusal: JournaledRefusal }[]; unreadable: string[] }>;
}

const JOURNAL_FILE = /^refusal-(\d+)-[0-9a-f]+\.json$/;

export function createRefusalJournal(dir: string, pid = process.pid): RefusalJournal {
  return {
    async save(refusal) {
      const name = `refusal-${pid}-${randomBytes(6).toString('hex')}.json`;
      const file = await open(join(dir, name), 'wx', 0o600).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        await mkdir(dir, { recursive: true, mode: 0o700 }); // the spool folder is made on first use
        return open(join(dir, name), 'wx', 0o600);
      });
      try {
        await file.writeFile(JSON.stringify({ ...refusal, savedAtMs: Date.now() }));
        await file.sync();
      } finally {
        await file.close();
      }
      return name;
    },
    async remove(handle) {
      await rm(join(dir, handle), { force: true });
    },
    async leftovers() {
      const refusals: { handle: string; refusal: JournaledRefusal }[] = [];
      const unreadable: string[] = [];
      const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return [];
        throw err;
      });
      for (const name of names) {
        const owner = JOURNAL_FILE.exec(name)?.[1];
        if (owner === undefined || (Number(owner) !== pid && processAlive(Number(owner)))) continue;
        const refusal = parsed(await readFile(join(dir, name), 'utf8').catch(() => ''));
        if (refusal) refusals.push({ handle: name, refusal });
        else {
          unreadable.push(name);
          await rm(join(dir, name), { force: true });
        }
      }
      return { refusals, unreadable };
    },
  };
}

function parsed(text: string): JournaledRefusal | undefined {
  try {
    const value = JSON.parse(text) as Partial<JournaledRefusal>;
    const { charmId, opened, touched, savedAtMs } = value;
    if (typeof charmId !== 'string' || typeof opened?.path !== 'string' || !Array.isArray(touched))
      return undefined;
    if (typeof savedAtMs !== 'number') return undefined;
    return { charmId, opened, touched: touched.map(String), savedAtMs };
  } catch {
    return undefined;
  }
}
