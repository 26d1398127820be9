import type { ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { BackupObject, BackupStore } from '@cring/backup-store';

// What charm servers report for directories they create (0750 plus Go's ModeDir bit) and for files by default.
const DIR_MODE = 2 ** 31 + 0o750;
const DIR_SIZE = 4096;
const DEFAULT_FILE_MODE = 0o644;
// Listing modes come from each object's metadata: one HEAD per entry, skipped for very large directories.
const MAX_HEADS_PER_LISTING = 500;

const httpDate = (date: Date | undefined) => (date ?? new Date(0)).toUTCString();

function writeJson(res: ServerResponse, status: number, value: unknown, head: boolean): void {
  const body = Buffer.from(`${JSON.stringify(value)}\n`);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(body.length) });
  res.end(head ? undefined : body);
}

/**
 * Answers GET/HEAD /v1/fs/* from the S3 backup while no owner of the user is reachable, in the shapes the charm
 * client reads: a file as application/octet-stream with X-File-Mode and Last-Modified, a directory as the
 * server's FileInfo listing, anything else as the server's 404.
 */
export async function serveFromBackup(
  store: BackupStore,
  charmId: string,
  path: string,
  res: ServerResponse,
  head: boolean,
): Promise<void> {
  const object = path === '/' ? undefined : await store.head(charmId, path);
  if (object) {
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Last-Modified': httpDate(object.lastModified),
      'X-File-Mode': String(object.mode ?? DEFAULT_FILE_MODE),
      'Content-Length': String(object.size),
    });
    if (head) return void res.end();
    const found = await store.get(charmId, path);
    if (!found) return void res.destroy();
    await pipeline(found.body, res);
    return;
  }
  const below: BackupObject[] = [];
  for await (const entry of store.list(charmId, path)) if (entry.path !== path) below.push(entry);
  if (below.length === 0) return writeJson(res, 404, { message: 'file not found' }, head);

  const prefix = path === '/' ? '/' : `${path}/`;
  const children = new Map<string, { isDir: boolean; object?: BackupObject }>();
  for (const entry of below) {
    const [name, ...rest] = entry.path.slice(prefix.length).split('/');
    if (!name) continue;
    if (rest.length > 0) children.set(name, { isDir: true });
    else if (!children.has(name)) children.set(name, { isDir: false, object: entry });
  }
  const heads = children.size <= MAX_HEADS_PER_LISTING;
  const files = await Promise.all(
    [...children].map(async ([name, child]) => {
      if (child.isDir)
        return { name, is_dir: true, size: DIR_SIZE, modtime: new Date().toISOString(), mode: DIR_MODE };
      const meta = heads ? await store.head(charmId, `${prefix}${name}`) : undefined;
      return {
        name,
        is_dir: false,
        size: child.object?.size ?? 0,
        modtime: (child.object?.lastModified ?? new Date(0)).toISOString(),
        mode: meta?.mode ?? DEFAULT_FILE_MODE,
      };
    }),
  );
  const name = path === '/' ? charmId : (path.split('/').pop() as string);
  res.setHeader('X-File-Mode', String(DIR_MODE));
  writeJson(
    res,
    200,
    { name, is_dir: true, size: 0, modtime: new Date().toISOString(), mode: DIR_MODE, files },
    head,
  );
}
