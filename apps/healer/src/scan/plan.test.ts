import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileEntry } from '@cring/manifest';
import { type Copy, chooseAdoption, classifyFile, type FileFacts, lostWrite, type S3State } from './plan.ts';

const SHA = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const entry = (holders = ['b1', 'b2', 'b3']): FileEntry => ({
  kind: 'file',
  version: 4,
  sha256: SHA,
  size: 10,
  mode: 420,
  holders,
  atMs: 1,
});
const copy = (size = 10, sha256?: string): Copy => ({ size, mode: 420, ...(sha256 ? { sha256 } : {}) });
const present = (extra: Partial<Extract<S3State, { state: 'present' }>> = {}): S3State => ({
  state: 'present',
  size: 10,
  ...extra,
});

function facts(overrides: Partial<FileFacts> = {}): FileFacts {
  return {
    entry: entry(),
    owners: ['b1', 'b2', 'b3'],
    preference: ['b1', 'b2', 'b3', 'b4'],
    reachable: new Set(['b1', 'b2', 'b3', 'b4']),
    copies: new Map([
      ['b1', copy()],
      ['b2', copy()],
      ['b3', copy()],
    ]),
    s3: present(),
    deep: false,
    ...overrides,
  };
}

describe('classifyFile', () => {
  // Redis lost its last second: the manifest still names the version committed at 1 000 ms.
  const NEWER: Copy = { size: 12, mode: 420, modifiedMs: 5_000 };
  const OLDER: Copy = { ...copy(), modifiedMs: 900 };
  const afterLostTail = (copies: Record<string, Copy>, extra: Partial<FileFacts> = {}) =>
    classifyFile(
      facts({ entry: { ...entry(), atMs: 1_000 }, copies: new Map(Object.entries(copies)), ...extra }),
    );

  it('never replaces a version a majority of owners wrote after the manifest entry with the older one', () => {
    const verdict = afterLostTail({ b1: NEWER, b2: NEWER, b3: OLDER });
    assert.deepEqual(
      verdict.repairs.filter((r) => r.target !== 's3'),
      [
        { target: 'b1', action: 'keep-newer', modifiedMs: 5_000 },
        { target: 'b2', action: 'keep-newer', modifiedMs: 5_000 },
      ],
    );
  });

  it('keeps newer bytes a quorum holds on one owner and a stand-in (a sloppy write the manifest lost)', () => {
    // b2 was down: the acknowledged write went to b1 and stand-in b4.
    const verdict = afterLostTail({ b1: NEWER, b2: OLDER, b3: OLDER, b4: NEWER });
    assert.deepEqual(verdict.repairs, [{ target: 'b1', action: 'keep-newer', modifiedMs: 5_000 }]);
    assert.deepEqual(verdict.prunable, []);
  });

  it('never offers for pruning newer bytes a quorum of non-owners holds', () => {
    const all = ['b1', 'b2', 'b3', 'b4', 'b5', 'b6'];
    const verdict = afterLostTail(
      { b1: OLDER, b2: OLDER, b3: OLDER, b4: NEWER, b5: NEWER, b6: OLDER },
      { preference: all, reachable: new Set(all) },
    );
    assert.deepEqual(verdict.prunable, ['b6']);
  });

  it('repairs a lone copy damaged after the entry (a truncation is not a newer version)', () => {
    const verdict = afterLostTail({ b1: OLDER, b2: { ...copy(3), modifiedMs: 5_000 }, b3: OLDER });
    assert.deepEqual(verdict.repairs, [{ target: 'b2', action: 'replicate', sources: ['b1', 'b3'] }]);
  });

  it('finds nothing when every owner and S3 hold the version', () => {
    const verdict = classifyFile(facts());
    assert.deepEqual(verdict.problems, []);
    assert.deepEqual(verdict.repairs, []);
    assert.deepEqual(verdict.verifiedSources, ['b1', 'b2', 'b3']);
  });

  it('replicates a missing or wrong-size copy from the matching ones and stops trusting it', () => {
    const verdict = classifyFile(
      facts({
        copies: new Map([
          ['b1', copy()],
          ['b3', copy(3)],
        ]),
      }),
    );
    assert.deepEqual(verdict.problems, [
      { target: 'b2', kind: 'missing' },
      { target: 'b3', kind: 'size-mismatch' },
    ]);
    assert.deepEqual(verdict.repairs, [
      { target: 'b2', action: 'replicate', sources: ['b1'] },
      { target: 'b3', action: 'replicate', sources: ['b1'] },
    ]);
    assert.deepEqual(verdict.holdersToRemove, ['b2', 'b3']);
  });

  it('compares sha256 only in deep scans, and then records verified owners as holders', () => {
    const copies = new Map([
      ['b1', copy(10, SHA)],
      ['b2', copy(10, OTHER)],
      ['b3', copy(10, SHA)],
    ]);
    const deep = classifyFile(
      facts({ entry: entry(['b1']), copies, deep: true, s3: present({ sha256: SHA, hashed: SHA }) }),
    );
    assert.deepEqual(deep.problems, [{ target: 'b2', kind: 'hash-mismatch' }]);
    assert.deepEqual(deep.repairs, [{ target: 'b2', action: 'replicate', sources: ['b1', 'b3'] }]);
    assert.deepEqual(deep.holdersToAdd, ['b3']);
    const shallow = classifyFile(facts({ copies: new Map([...copies].map(([b, c]) => [b, copy(c.size)])) }));
    assert.deepEqual(shallow.problems, [], 'same sizes look fine without --deep');
  });

  it('restores from S3 only when no backend matches and the object is this version', () => {
    const none = new Map<string, Copy>([['b1', copy(4)]]);
    const restorable = classifyFile(facts({ copies: none, s3: present({ sha256: SHA }) }));
    assert.deepEqual(
      restorable.repairs.map((r) => `${r.target}:${r.action}`),
      ['b1:restore', 'b2:restore', 'b3:restore'],
    );
    const unknownSha = classifyFile(facts({ copies: none }));
    assert.equal(unknownSha.needsS3Sha256, true, 'fetch the sha256 metadata first');
    assert.deepEqual(unknownSha.repairs, []);
    const otherVersion = classifyFile(facts({ copies: none, s3: present({ sha256: OTHER }) }));
    assert.deepEqual(
      otherVersion.repairs.map((r) => `${r.target}:${r.action}`),
      ['b1:unrepairable', 'b2:unrepairable', 'b3:unrepairable', 's3:unrepairable'],
    );
    const noMetadata = classifyFile(facts({ copies: none, s3: present({ sha256: '' }) }));
    assert.equal(noMetadata.needsS3Sha256, false);
    assert.ok(noMetadata.repairs.every((r) => r.action === 'unrepairable'));
    const corrupt = classifyFile(facts({ copies: none, s3: present({ sha256: SHA, hashed: OTHER }) }));
    assert.ok(
      corrupt.repairs.every((r) => r.action === 'unrepairable'),
      'bytes that lie about their sha256',
    );
  });

  it('backs up a missing or wrong S3 object from the matching backends', () => {
    assert.deepEqual(classifyFile(facts({ s3: { state: 'absent' } })).repairs, [
      { target: 's3', action: 'backup', sources: ['b1', 'b2', 'b3'] },
    ]);
    assert.deepEqual(classifyFile(facts({ s3: present({ size: 9 }) })).problems, [
      { target: 's3', kind: 'size-mismatch' },
    ]);
    assert.deepEqual(classifyFile(facts({ s3: present({ sha256: OTHER }) })).problems, [
      { target: 's3', kind: 'hash-mismatch' },
    ]);
    assert.deepEqual(classifyFile(facts({ s3: { state: 'unreachable' } })).problems, [], 'S3 unknown');
  });

  it('judges nothing on unreachable owners', () => {
    const verdict = classifyFile(
      facts({ reachable: new Set(['b1', 'b2']), copies: new Map([['b1', copy()]]) }),
    );
    assert.deepEqual(verdict.problems, [{ target: 'b2', kind: 'missing' }]);
    assert.deepEqual(verdict.prunable, []);
  });

  it('offers non-owner copies for pruning only when every owner holds the version', () => {
    const withStray = new Map([...facts().copies, ['b4', copy()]]);
    assert.deepEqual(classifyFile(facts({ copies: withStray })).prunable, ['b4']);
    withStray.delete('b2');
    assert.deepEqual(classifyFile(facts({ copies: withStray })).prunable, []);
  });

  it('drops a non-owner holder whose copy is gone', () => {
    const verdict = classifyFile(facts({ entry: entry(['b1', 'b2', 'b3', 'b4']) }));
    assert.deepEqual(verdict.holdersToRemove, ['b4']);
  });

  it('prefers holders, then preference order, as sources', () => {
    const verdict = classifyFile(
      facts({
        entry: entry(['b3']),
        copies: new Map([
          ['b1', copy()],
          ['b3', copy()],
          ['b4', copy()],
        ]),
      }),
    );
    assert.deepEqual(verdict.verifiedSources, ['b3', 'b1', 'b4']);
  });
});

describe('chooseAdoption', () => {
  const hashed = (sha256: string, size = 10) => ({ sha256, size, mode: 420 });
  const owners = ['b2', 'b1', 'b3'];
  const preference = ['b2', 'b1', 'b3', 'b4'];

  it('takes the bytes most owners hold', () => {
    const choice = chooseAdoption(
      new Map([
        ['b1', hashed(OTHER)],
        ['b3', hashed(OTHER)],
        ['b2', hashed(SHA)],
        ['b4', hashed(SHA)],
      ]),
      owners,
      preference,
    );
    assert.equal(choice?.sha256, OTHER);
    assert.deepEqual(choice?.holders, ['b1', 'b3']);
    assert.deepEqual(choice?.others, [{ sha256: SHA, size: 10, backends: ['b2', 'b4'] }]);
  });

  it('breaks a tie by preference order, and counts only owners', () => {
    const choice = chooseAdoption(
      new Map([
        ['b1', hashed(OTHER)],
        ['b2', hashed(SHA)],
        ['b4', hashed(OTHER)],
      ]),
      owners,
      preference,
    );
    assert.equal(choice?.sha256, SHA, 'b2 comes first in the preference list');
  });

  it('adopts copies found only on non-owners', () => {
    const choice = chooseAdoption(new Map([['b4', hashed(SHA, 7)]]), owners, preference);
    assert.deepEqual(choice, { sha256: SHA, size: 7, mode: 420, holders: ['b4'], others: [] });
    assert.equal(chooseAdoption(new Map(), owners, preference), undefined);
  });
});

describe('lostWrite (row L1)', () => {
  const NEWER: Copy = { size: 12, mode: 420, sha256: OTHER, modifiedMs: 5_000 };
  const OLDER: Copy = { size: 10, mode: 420, sha256: SHA, modifiedMs: 900 };
  const file = { ...entry(), atMs: 1_000 };
  const tombstone = { kind: 'tombstone' as const, version: 4, holders: [], atMs: 1_000 };
  const judge = (governing: typeof file | typeof tombstone, copies: Record<string, Copy>) =>
    lostWrite({
      governing,
      owners: ['b1', 'b2', 'b3'],
      preference: ['b1', 'b2', 'b3', 'b4'],
      reachable: new Set(['b1', 'b2', 'b3', 'b4']),
      copies: new Map(Object.entries(copies)),
    });

  it('names the bytes a quorum wrote after the file entry, held by those backends in preference order', () => {
    const choice = judge(file, { b3: NEWER, b1: NEWER, b2: OLDER });
    assert.deepEqual(choice && { sha256: choice.sha256, size: choice.size, holders: choice.holders }, {
      sha256: OTHER,
      size: 12,
      holders: ['b1', 'b3'],
    });
  });

  it('names bytes a quorum wrote after a delete (the acknowledged write after it)', () => {
    assert.deepEqual(judge(tombstone, { b1: NEWER, b4: NEWER })?.holders, ['b1', 'b4']);
  });

  it('finds nothing for a lone newer copy, copies older than the entry, or the entry’s own bytes', () => {
    assert.equal(judge(file, { b1: NEWER, b2: OLDER, b3: OLDER }), undefined);
    assert.equal(judge(tombstone, { b1: OLDER, b2: OLDER, b3: OLDER }), undefined, 'a missed delete');
    const own = { ...OLDER, modifiedMs: 5_000 }; // the version itself, its mtime set late
    assert.equal(judge(file, { b1: own, b2: own }), undefined);
  });

  it('finds nothing when the newer copies disagree, or were not hashed', () => {
    const third = { ...NEWER, sha256: 'c'.repeat(64) };
    assert.equal(judge(file, { b1: NEWER, b2: third, b3: OLDER }), undefined);
    const unhashed = { size: 12, mode: 420, modifiedMs: 5_000 };
    assert.equal(judge(file, { b1: unhashed, b2: unhashed }), undefined);
  });
});
