import { statSync, utimesSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { ModTimeRequest } from '@cring/agent-protocol';
import { cleanFsPath } from '@cring/charm';

/** The file is not there, or not the copy the caller means (another size): nothing was changed. */
export class NotThatFileError extends Error {
  readonly code = 'NOT_THAT_FILE';
  constructor(message: string) {
    super(message);
    this.name = 'NotThatFileError';
  }
}

/**
 * Sets a user's file's modification time, as charm stores it (`DATA_DIR/files/<charm_id>/<path>`), so a replica
 * lists with the acknowledged write's time. Only a regular file of the stated size inside the user's tree is
 * touched (a path that escapes it, a directory or another version is refused).
 */
export function setModTime(dataDir: string, request: ModTimeRequest): void {
  const root = join(dataDir, 'files', request.charmId);
  const file = join(root, cleanFsPath(request.path));
  const inside = relative(root, file);
  if (inside === '' || inside.startsWith(`..${sep}`) || inside === '..') {
    throw new NotThatFileError(`${request.path} is not a file path inside the user's tree`);
  }
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(file);
  } catch {
    throw new NotThatFileError(`no file ${request.path} for ${request.charmId} here`);
  }
  if (!stat.isFile()) throw new NotThatFileError(`${request.path} is not a regular file here`);
  if (stat.size !== request.size) {
    throw new NotThatFileError(
      `${request.path} has ${stat.size} bytes here, not ${request.size}: another version`,
    );
  }
  const mtime = new Date(request.mtimeMs);
  utimesSync(file, stat.atime, mtime);
}
