import assert from 'node:assert/strict';
import { test } from 'node:test';
import { agreedAnswer, fileFingerprint, listingFingerprint, type OwnerAnswer } from './owner-agreement.ts';

const file = (backend: string, sha: string): OwnerAnswer => ({
  backend,
  kind: 'answer',
  status: 200,
  fingerprint: fileFingerprint(4, sha),
});
const absent = (backend: string): OwnerAnswer => ({
  backend,
  kind: 'answer',
  status: 404,
  fingerprint: 'raw x',
});
const down = (backend: string): OwnerAnswer => ({ backend, kind: 'unreachable', reason: 'ECONNREFUSED' });

test('owners that all hold the same bytes answer, from the first of them', () => {
  assert.deepEqual(agreedAnswer([file('b1', 'v2'), file('b2', 'v2'), file('b3', 'v2')], 2), {
    kind: 'agreed',
    backend: 'b1',
  });
});

test('a lagging owner with the previous version refuses the read instead of being relayed', () => {
  const agreement = agreedAnswer([file('b1', 'v1'), file('b2', 'v2'), file('b3', 'v2')], 2);
  assert.equal(agreement.kind, 'refused');
  assert.match(agreement.kind === 'refused' ? agreement.reason : '', /different copies.*b1: 200/);
});

test('a lagging owner still holding a deleted file refuses the read, as a lone 404 against a copy does', () => {
  assert.equal(agreedAnswer([file('b1', 'v1'), absent('b2'), absent('b3')], 2).kind, 'refused');
  assert.equal(agreedAnswer([absent('b1'), file('b2', 'v1'), down('b3')], 2).kind, 'refused');
});

test('two agreeing owners of three are a read quorum; one is not', () => {
  assert.deepEqual(agreedAnswer([down('b1'), absent('b2'), absent('b3')], 2), {
    kind: 'agreed',
    backend: 'b2',
  });
  const alone = agreedAnswer([down('b1'), file('b2', 'v2'), down('b3')], 2);
  assert.equal(alone.kind, 'refused');
  assert.match(alone.kind === 'refused' ? alone.reason : '', /only 1 of the 2 owners/);
});

test('no owner answering leaves the read to the S3 backup', () => {
  assert.deepEqual(agreedAnswer([down('b1'), down('b2'), down('b3')], 2), { kind: 'none-answered' });
});

test("listings compare entries by name, kind and size, not by the backends' modification times", () => {
  const listing = (modtime: string, size: number) =>
    Buffer.from(
      JSON.stringify({
        name: 'd',
        is_dir: true,
        size: 0,
        modtime,
        files: [
          { name: 'b', is_dir: false, size, modtime },
          { name: 'a', is_dir: true, size: 4096, modtime },
        ],
      }),
    );
  assert.equal(
    listingFingerprint(listing('2026-12-01T10:00:00Z', 3)),
    listingFingerprint(listing('2026-12-01T10:00:07Z', 3)),
  );
  assert.notEqual(
    listingFingerprint(listing('2026-12-01T10:00:00Z', 3)),
    listingFingerprint(listing('2026-12-01T10:00:00Z', 4)),
  );
});
