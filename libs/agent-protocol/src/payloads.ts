// The JSON the agent and its clients exchange. Maps and Sets travel as arrays of entries; every payload is
// checked on arrival (a request or an answer that does not parse changes nothing).
import type { AccountSnapshot, AccountUser, ApplyPlan, ApplyResult } from '@cring/accounts';
import { z } from 'zod';

const sqlTime = z.union([z.string(), z.number(), z.null()]);
const accountUser = z.object({
  charmId: z.string().min(1),
  name: z.string().nullable(),
  email: z.string().nullable(),
  bio: z.string().nullable(),
  createdAt: sqlTime,
  keys: z.array(
    z.object({
      publicKey: z.string().min(1),
      createdAt: sqlTime,
      encryptKeys: z.array(z.object({ globalId: z.string(), encryptedKey: z.string(), createdAt: sqlTime })),
    }),
  ),
  seqs: z.array(z.object({ name: z.string(), seq: z.number().int() })),
}) satisfies z.ZodType<AccountUser>;

const snapshotWire = z.object({ marker: z.string().nullable(), users: z.array(accountUser) });
const applyPlanWire = z.object({
  backend: z.string().min(1),
  targets: z.array(z.tuple([z.string(), accountUser.nullable()])),
  snapshot: z.array(z.tuple([z.string(), accountUser])),
  expectedMarker: z.string().nullable(),
  newMarker: z.string().min(1).optional(),
  markerOnlyIfComplete: z.boolean().optional(),
  now: z.iso.datetime(),
});
const count = z.number().int().min(0);
const applyResultWire = z.object({
  changes: z.object({
    usersAdded: count,
    usersDeleted: count,
    keysAdded: count,
    keysDeleted: count,
    encryptKeysAdded: count,
    namesSet: count,
    seqsRaised: count,
  }),
  deferred: z.array(z.string()),
  reached: z.array(z.string()),
  partial: z.array(z.tuple([z.string(), accountUser.nullable()])),
  markerWritten: z.boolean(),
  conflicts: z.array(z.string()),
});
export const modTimeRequest = z.object({
  charmId: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i),
  path: z.string().min(1).max(4096),
  /** The acknowledged write's time (epoch ms). */
  mtimeMs: z.number().int().min(0),
  /** The copy's size: the time is only set when the file still is that copy. */
  size: z.number().int().min(0),
});
export type ModTimeRequest = z.infer<typeof modTimeRequest>;
/** Most files one modification-time call may name (a replicator sends the copies of its jobs in flight). */
export const MAX_MOD_TIMES_PER_CALL = 256;
export const modTimesRequest = z.object({
  files: z.array(modTimeRequest).min(1).max(MAX_MOD_TIMES_PER_CALL),
});
/** Per file, in the request's order: set, or the agent's refusal (nothing changed for that file). */
export const modTimesAnswer = z.object({
  results: z.array(
    z.union([z.object({ set: z.literal(true) }), z.object({ code: z.string(), message: z.string() })]),
  ),
});
export type ModTimeResult = z.infer<typeof modTimesAnswer>['results'][number];

/** A payload that is not what the protocol says. */
export class PayloadError extends Error {
  readonly code = 'BAD_PAYLOAD';
  constructor(what: string, error: z.ZodError) {
    super(`${what}: ${error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    this.name = 'PayloadError';
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new PayloadError(what, parsed.error);
  return parsed.data;
}

export const encodeSnapshot = (s: AccountSnapshot) => ({ marker: s.marker, users: [...s.users.values()] });
export function decodeSnapshot(value: unknown): AccountSnapshot {
  const wire = parse(snapshotWire, value, 'account snapshot');
  return { marker: wire.marker, users: new Map(wire.users.map((u) => [u.charmId, u])) };
}

export const encodeApplyPlan = (plan: ApplyPlan) => ({
  backend: plan.backend,
  targets: [...plan.targets],
  snapshot: [...plan.snapshot],
  expectedMarker: plan.expectedMarker,
  newMarker: plan.newMarker,
  markerOnlyIfComplete: plan.markerOnlyIfComplete,
  now: plan.now.toISOString(),
});
export function decodeApplyPlan(value: unknown): ApplyPlan {
  const wire = parse(applyPlanWire, value, 'apply plan');
  return {
    ...wire,
    targets: new Map(wire.targets),
    snapshot: new Map(wire.snapshot),
    now: new Date(wire.now),
  };
}

export const encodeApplyResult = (result: ApplyResult) => ({
  ...result,
  reached: [...result.reached],
  partial: [...result.partial].map(([id, user]) => [id, user ?? null]),
});
export function decodeApplyResult(value: unknown): ApplyResult {
  const wire = parse(applyResultWire, value, 'apply result');
  return {
    ...wire,
    reached: new Set(wire.reached),
    partial: new Map(wire.partial.map(([id, user]) => [id, user ?? undefined])),
  };
}

export function decodeModTimeRequest(value: unknown): ModTimeRequest {
  return parse(modTimeRequest, value, 'modification time request');
}

export function decodeModTimesRequest(value: unknown): ModTimeRequest[] {
  return parse(modTimesRequest, value, 'modification times request').files;
}

export const charmIdsWire = z.object({ charmIds: z.array(z.string()) });
export const knowsUserWire = z.object({ known: z.boolean() });
export function decodeWith<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  return parse(schema, value, what);
}

/** Free space on a backend's data volume, and whether it is under the cluster's reserve (decided by its agent). */
export const diskSpaceWire = z.object({
  freeBytes: z.number().int().min(0),
  sizeBytes: z.number().int().min(0),
  freePercent: z.number().min(0).max(100),
  /** The reserve in bytes: the larger of the percentage of the volume and the absolute setting. */
  reserveBytes: z.number().int().min(0),
  underReserve: z.boolean(),
});
export type DiskSpace = z.infer<typeof diskSpaceWire>;
