import { pipeline, type Readable } from 'node:stream';
import type {
  DeleteObjectsCommandOutput,
  ListObjectsV2CommandOutput,
  ListObjectVersionsCommandOutput,
  S3Client,
} from '@aws-sdk/client-s3';
import { getBucketVersioning } from './bucket-versioning.ts';
import { BackupConflictError, BackupUnavailableError } from './errors.ts';
import { assertCleanPath, keyFor, pathOfKey, storedAtOf } from './object-keys.ts';
import { createSignedS3 } from './signed-s3.ts';
import { createVerifyingStream } from './verifying-stream.ts';

export interface S3Settings {
  /** Unset for AWS itself. */
  endpoint?: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
  /** A request whose connection stays silent this long fails (a frozen S3 must not hold a job or a read forever). */
  requestTimeoutMs?: number;
  /** Run against a bucket without versioning (no history, no restore): only with CRING_S3_ALLOW_UNVERSIONED. */
  allowUnversioned?: boolean;
  /** Noncurrent object versions older than this are pruned by the healer; unset keeps every version. */
  retentionDays?: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
const CONNECTION_TIMEOUT_MS = 10_000;

export interface BackupObject {
  /** Rooted path of the user's file: the key without the charm id. */
  path: string;
  size: number;
  sha256?: string;
  mode?: number;
  /** The manifest version the backup holds (not the S3 version id). */
  version?: number;
  lastModified?: Date;
}

/** One entry of a key's history (ListObjectVersions): an object version or a delete marker. */
export interface BackupVersion {
  path: string;
  /** The S3 version id. */
  versionId: string;
  deleteMarker: boolean;
  /** The current entry of its key (the newest). */
  isLatest: boolean;
  /** When S3 stored it: see `storedAtOf` (object-keys.ts) for why this is not always LastModified. */
  storedAt: Date;
  size: number;
}

/** The bucket's versioning state as S3 reports it ('Off' when it was never enabled). */
export type BucketVersioning = 'Enabled' | 'Suspended' | 'Off';

export interface BackupFile {
  body: Readable;
  /** Expected size and sha256 (hex) of body. */
  size: number;
  sha256: string;
  mode: number;
  version: number;
}

export interface BackupStore {
  readonly bucket: string;
  /** Object key of a user's file: `<charmId><path>` where path is rooted ('/a/b' → '<charmId>/a/b'). */
  keyFor(charmId: string, path: string): string;
  /**
   * Streams body into the object in one PUT, hashing and counting it on the way. On a sha256 or size mismatch the
   * PUT is cut before its last bytes, so no object (version) is completed, and BackupChecksumError is thrown.
   */
  put(charmId: string, path: string, file: BackupFile): Promise<void>;
  /** Undefined when there is no such object. The caller must consume or destroy body. */
  get(charmId: string, path: string): Promise<(BackupObject & { body: Readable }) | undefined>;
  /** The current object, or with versionId that version of it. */
  head(charmId: string, path: string, versionId?: string): Promise<BackupObject | undefined>;
  /** Every object of the user at or below path ('/' = all), with size and lastModified from the listing. */
  list(charmId: string, path?: string): AsyncIterable<BackupObject>;
  /** One object version (from `versions`), with its metadata; undefined when that version is gone. */
  getVersion(
    charmId: string,
    path: string,
    versionId: string,
  ): Promise<(BackupObject & { body: Readable }) | undefined>;
  /**
   * The history of every key at or below path ('/' = all) of a user, or of the whole bucket when charmId is
   * undefined: object versions and delete markers, each key's entries newest first, keys in key order.
   */
  versions(charmId: string | undefined, path?: string): AsyncIterable<BackupVersion>;
  /** Permanently removes these versions (by version id): only the pruning of noncurrent versions calls it. */
  deleteVersions(entries: readonly { key: string; versionId: string }[]): Promise<number>;
  /** GetBucketVersioning. */
  versioning(): Promise<BucketVersioning>;
  /**
   * Every charm id that has objects (the first key segment), for scans. On versitygw this also yields users whose
   * objects are all deleted (their delete markers keep the prefix).
   */
  users(): AsyncIterable<string>;
  /**
   * Deletes every object at or below path for which keep(path) is false; returns how many were deleted. With
   * bucket versioning on this adds delete markers, so history stays recoverable.
   */
  deleteWithin(charmId: string, path: string, keep?: (path: string) => boolean): Promise<number>;
  /** Safe to call twice. */
  close(): void;
}

// What S3 takes in one PUT; a file (at most 1 GiB, the charm server's cap) always fits.
const MAX_PUT_BYTES = 5 * 1024 ** 3;
// Backups up to this size are read and checked whole, then sent in one write; larger ones stream.
const WHOLE_PUT_MAX_BYTES = 64 * 1024;
// DeleteObjects takes at most 1000 keys.
const DELETE_BATCH_SIZE = 1000;
const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EPIPE',
]);
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** The SDK and one client, loaded on first use: a gateway that never reads from S3 never holds it (~8 MiB RSS). */
interface S3Sdk {
  s3: typeof import('@aws-sdk/client-s3');
  client: S3Client;
}

export function createBackupStore(settings: S3Settings): BackupStore {
  let loaded: Promise<S3Sdk> | undefined;
  const sdk = () => {
    loaded ??= import('@aws-sdk/client-s3').then((s3) => ({ s3, client: newClient(s3, settings) }));
    return loaded;
  };
  // PutObject and GetBucketVersioning are signed here, without the SDK (signed-s3.ts).
  const signedS3 = createSignedS3({
    ...settings,
    requestTimeoutMs: settings.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    connectionTimeoutMs: CONNECTION_TIMEOUT_MS,
  });
  const bucket = settings.bucket;
  const endpointLabel = settings.endpoint ?? `https://s3.${settings.region}.amazonaws.com`;
  let closed = false;

  /** Rethrows err as BackupUnavailableError when S3 is unreachable or failed (5xx), else unchanged. */
  const unavailable = (err: unknown, operation: string): unknown => {
    const status = httpStatusOf(err);
    if (status !== undefined && status >= 500) {
      return new BackupUnavailableError(
        `S3 at ${endpointLabel} failed with HTTP ${status} (${errorName(err)}) on ${operation}: check the S3 server's health and logs`,
        { cause: err },
      );
    }
    const code = networkErrorCodeOf(err);
    if (code !== undefined) {
      return new BackupUnavailableError(
        `S3 at ${endpointLabel} is unreachable (${code}) on ${operation}: check S3_ENDPOINT and that the S3 server runs`,
        { cause: err },
      );
    }
    return err;
  };

  const describe = (charmId: string, path: string) => `backup of ${charmId}:${path}`;

  async function* listKeys(
    prefix: string,
    options: { maxKeys?: number; delimiter?: string; firstPageOnly?: boolean } = {},
  ): AsyncGenerator<ListObjectsV2CommandOutput> {
    let continuationToken: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        const { s3, client } = await sdk();
        page = await client.send(
          new s3.ListObjectsV2Command({
            Bucket: bucket,
            Prefix: prefix,
            Delimiter: options.delimiter,
            MaxKeys: options.maxKeys,
            ContinuationToken: continuationToken,
          }),
        );
      } catch (err) {
        throw unavailable(err, 'list');
      }
      yield page;
      continuationToken = page.IsTruncated && !options.firstPageOnly ? page.NextContinuationToken : undefined;
    } while (continuationToken !== undefined);
  }

  async function* list(charmId: string, path = '/'): AsyncGenerator<BackupObject> {
    const base = keyFor(charmId, path);
    const toObject = (entry: { Key?: string; Size?: number; LastModified?: Date }): BackupObject => ({
      path: pathOfKey(charmId, entry.Key as string),
      size: entry.Size ?? 0,
      lastModified: entry.LastModified,
    });
    if (path !== '/') {
      // The key itself sorts first among keys starting with base; the next ones may be siblings like `/ab`.
      for await (const page of listKeys(base, { maxKeys: 1, firstPageOnly: true })) {
        const first = page.Contents?.[0];
        if (first?.Key === base) yield toObject(first);
      }
    }
    const below = path === '/' ? base : `${base}/`;
    for await (const page of listKeys(below)) {
      for (const entry of page.Contents ?? []) {
        // Folder markers (keys ending in '/') are not files.
        if (entry.Key === undefined || entry.Key.endsWith('/')) continue;
        yield toObject(entry);
      }
    }
  }

  async function* listVersions(charmId: string | undefined, path = '/'): AsyncGenerator<BackupVersion> {
    // Whole bucket: every key; one user: the key itself and what is below it (not siblings like `/ab`).
    const prefix = charmId === undefined ? '' : keyFor(charmId, path);
    const within = (key: string) =>
      charmId === undefined || path === '/' || key === prefix || key.startsWith(`${prefix}/`);
    const pathOf = (key: string) => (charmId === undefined ? key : pathOfKey(charmId, key));
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    do {
      let page: ListObjectVersionsCommandOutput;
      try {
        const { s3, client } = await sdk();
        page = await client.send(
          new s3.ListObjectVersionsCommand({
            Bucket: bucket,
            Prefix: prefix,
            KeyMarker: keyMarker,
            VersionIdMarker: versionIdMarker,
          }),
        );
      } catch (err) {
        throw unavailable(err, 'list versions');
      }
      const entries: (BackupVersion & { order: number })[] = [];
      const add = (
        entry: { Key?: string; VersionId?: string; IsLatest?: boolean; LastModified?: Date },
        deleteMarker: boolean,
        size: number,
      ) => {
        const key = entry.Key;
        if (key === undefined || entry.VersionId === undefined || key.endsWith('/') || !within(key)) return;
        entries.push({
          path: pathOf(key),
          versionId: entry.VersionId,
          deleteMarker,
          isLatest: entry.IsLatest === true,
          storedAt: storedAtOf(entry.VersionId, entry.LastModified),
          size,
          order: entries.length,
        });
      };
      for (const v of page.Versions ?? []) add(v, false, v.Size ?? 0);
      for (const m of page.DeleteMarkers ?? []) add(m, true, 0);
      // S3 lists versions and delete markers apart: merge them per key, newest first (the latest entry first).
      entries.sort(
        (a, b) =>
          (a.path < b.path ? -1 : a.path > b.path ? 1 : 0) ||
          Number(b.isLatest) - Number(a.isLatest) ||
          b.storedAt.getTime() - a.storedAt.getTime() ||
          a.order - b.order,
      );
      for (const { order: _, ...entry } of entries) yield entry;
      const more = page.IsTruncated === true;
      if (more && page.NextKeyMarker === keyMarker && page.NextVersionIdMarker === versionIdMarker) {
        // A server that hands back the same place would have this loop list the same page forever.
        throw new Error(`S3 at ${endpointLabel} did not advance its version listing past ${keyMarker}`);
      }
      keyMarker = more ? page.NextKeyMarker || undefined : undefined;
      versionIdMarker = more ? page.NextVersionIdMarker || undefined : undefined;
    } while (keyMarker !== undefined);
  }

  const deleteKeys = (keys: string[]) => deleteObjects(keys.map((Key) => ({ Key })));

  async function deleteObjects(objects: { Key: string; VersionId?: string }[]): Promise<number> {
    const keys = objects.map((o) => o.Key);
    let output: DeleteObjectsCommandOutput;
    try {
      const { s3, client } = await sdk();
      output = await client.send(
        new s3.DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }),
      );
    } catch (err) {
      throw unavailable(err, 'delete');
    }
    const failures = output.Errors ?? [];
    if (failures.length > 0) {
      const first = failures[0];
      throw new Error(
        `S3 at ${endpointLabel} refused to delete ${failures.length} of ${keys.length} objects (first: ${first?.Key}: ${first?.Code} ${first?.Message})`,
      );
    }
    return keys.length;
  }

  return {
    bucket,
    keyFor,

    async put(charmId, path, file) {
      const key = keyFor(charmId, path);
      const sha256 = file.sha256.toLowerCase();
      if (!SHA256_HEX.test(sha256) || !Number.isSafeInteger(file.size) || file.size < 0) {
        file.body.destroy();
        throw new TypeError(`${describe(charmId, path)}: expected sha256 (hex) and size are malformed`);
      }
      if (file.size > MAX_PUT_BYTES) {
        file.body.destroy();
        throw new RangeError(`${describe(charmId, path)}: ${file.size} bytes is more than one S3 PUT takes`);
      }
      const verifying = createVerifyingStream({ sha256, size: file.size }, describe(charmId, path));
      // A body that fails (wrong bytes, a source gone) cuts the PUT at once: its last bytes never go out.
      const cut = new AbortController();
      let bodyFailure: Error | undefined;
      verifying.once('error', (err) => {
        bodyFailure = err;
        cut.abort(err);
      });
      // Errors of body reach verifying (and so the PUT); the callback only keeps them from going unhandled.
      pipeline(file.body, verifying, () => {});
      try {
        // A small body is read whole (and so proved right) first, then sent with the head in one write.
        const body = file.size <= WHOLE_PUT_MAX_BYTES ? await readWhole(verifying) : verifying;
        // One PUT streamed with its Content-Length: no parts buffered in memory (16 MiB each, and the GC work
        // they caused), and no parts for the server to store and then join into the object (a second write).
        // Its sha256 is both the signed payload hash and the checksum S3 checks: S3 stores no other bytes, and a
        // PUT cut short (a server may take a closed connection for the end of the body) is refused.
        await signedS3.putObject({
          key,
          body,
          size: file.size,
          sha256,
          contentType: 'application/octet-stream',
          metadata: { sha256, mode: String(file.mode), version: String(file.version) },
          signal: cut.signal,
        });
      } catch (err) {
        verifying.destroy();
        // The verifying stream holds its last chunk back until the bytes proved right: a mismatch never completes.
        if (bodyFailure !== undefined) throw bodyFailure;
        if (isPathConflict(err)) {
          throw new BackupConflictError(
            `${describe(charmId, path)}: S3 at ${endpointLabel} cannot store key ${key} (${errorName(err)}): it keeps keys as files and directories, and a parent of this key is (or was) a file, or the key is a directory`,
            { cause: err },
          );
        }
        throw unavailable(err, 'put');
      }
    },

    async get(charmId, path) {
      const key = keyFor(charmId, path);
      try {
        const { s3, client } = await sdk();
        const output = await client.send(new s3.GetObjectCommand({ Bucket: bucket, Key: key }));
        return {
          ...objectFromHead(path, output),
          body: output.Body as Readable,
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw unavailable(err, 'get');
      }
    },

    async head(charmId, path, versionId) {
      const key = keyFor(charmId, path);
      try {
        const { s3, client } = await sdk();
        return objectFromHead(
          path,
          await client.send(new s3.HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId })),
        );
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw unavailable(err, 'head');
      }
    },

    list,

    async getVersion(charmId, path, versionId) {
      const key = keyFor(charmId, path);
      try {
        const { s3, client } = await sdk();
        const output = await client.send(
          new s3.GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }),
        );
        return { ...objectFromHead(path, output), body: output.Body as Readable };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw unavailable(err, 'get version');
      }
    },

    versions: listVersions,

    async deleteVersions(entries) {
      let deleted = 0;
      for (let start = 0; start < entries.length; start += DELETE_BATCH_SIZE) {
        const batch = entries.slice(start, start + DELETE_BATCH_SIZE);
        deleted += await deleteObjects(batch.map((e) => ({ Key: e.key, VersionId: e.versionId })));
      }
      return deleted;
    },

    async versioning() {
      try {
        // Without the SDK: the start-up check must not load it (bucket-versioning.ts).
        return await getBucketVersioning(signedS3, settings.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS);
      } catch (err) {
        throw unavailable(err, 'get bucket versioning');
      }
    },

    async *users() {
      for await (const page of listKeys('', { delimiter: '/' })) {
        for (const prefix of page.CommonPrefixes ?? []) {
          if (prefix.Prefix !== undefined && prefix.Prefix.length > 1) yield prefix.Prefix.slice(0, -1);
        }
      }
    },

    async deleteWithin(charmId, path, keep = () => false) {
      assertCleanPath(path);
      let deleted = 0;
      let batch: string[] = [];
      for await (const object of list(charmId, path)) {
        if (keep(object.path)) continue;
        batch.push(keyFor(charmId, object.path));
        if (batch.length === DELETE_BATCH_SIZE) {
          deleted += await deleteKeys(batch);
          batch = [];
        }
      }
      if (batch.length > 0) deleted += await deleteKeys(batch);
      return deleted;
    },

    close() {
      if (closed) return;
      closed = true;
      signedS3.close();
      void loaded?.then(
        ({ client }) => client.destroy(),
        () => {},
      );
    },
  };
}

function newClient(s3: S3Sdk['s3'], settings: S3Settings): S3Client {
  return new s3.S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    // Some S3-compatible servers reject the SDK's default CRC32 trailers; sha256 is checked by us while streaming.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: settings.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    },
  });
}

function objectFromHead(
  path: string,
  output: { ContentLength?: number; LastModified?: Date; Metadata?: Record<string, string> },
): BackupObject {
  // Metadata keys arrive lower-cased (HTTP header names).
  const metadata = output.Metadata ?? {};
  return {
    path,
    size: output.ContentLength ?? 0,
    sha256: metadata.sha256,
    mode: integerOrUndefined(metadata.mode),
    version: integerOrUndefined(metadata.version),
    lastModified: output.LastModified,
  };
}

function integerOrUndefined(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const parsed = Number(value);
  return Number.isSafeInteger(parsed) ? parsed : undefined;
}

/** Every byte of a stream that ends (or fails) on its own, e.g. the verifying stream of a small body. */
async function readWhole(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function httpStatusOf(err: unknown): number | undefined {
  const metadata = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata;
  return metadata?.httpStatusCode;
}

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : String(err);
}

/** A missing key: GetObject says NoSuchKey; HeadObject has no body, so only NotFound (404). */
function isNotFound(err: unknown): boolean {
  const name = err instanceof Error ? err.name : undefined;
  return name === 'NoSuchKey' || name === 'NotFound';
}

/** versitygw's posix backend: a key and a key below it cannot both exist (also when one is a delete marker). */
function isPathConflict(err: unknown): boolean {
  const name = err instanceof Error ? err.name : undefined;
  return name === 'ObjectParentIsFile' || name === 'ExistingObjectIsDirectory';
}

/** The errno-style code of a connection failure (also inside an AggregateError from happy eyeballs). */
function networkErrorCodeOf(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_ERROR_CODES.has(code)) return code;
  if (err.name === 'TimeoutError') return 'timeout';
  if (err instanceof AggregateError) {
    for (const inner of err.errors) {
      const innerCode = networkErrorCodeOf(inner);
      if (innerCode !== undefined) return innerCode;
    }
  }
  return undefined;
}
