import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ManifestEntry } from '@cring/manifest';
import { planRestore, type VersionThen } from './plan.ts';

const sha = (c: string) => c.repeat(64);
const then = (c: string, extra: Partial<VersionThen> = {}): VersionThen => ({
  versionId: `v-${c}`,
  size: 3,
  sha256: sha(c),
  mode: 0o644,
  ...extra,
});
const file = (c: string, version: number): ManifestEntry => ({
  kind: 'file',
  version,
  sha256: sha(c),
  size: 3,
  mode: 0o644,
  holders: ['a', 'b'],
  atMs: 0,
});
const tombstone = (version: number): ManifestEntry => ({
  kind: 'tombstone',
  version,
  holders: ['a'],
  atMs: 0,
});

describe('the restore plan (one row of the README table per case)', () => {
  it('restores what was deleted or overwritten since, leaves the same bytes and extra files alone', () => {
    const backupThen = new Map<string, VersionThen | undefined>([
      ['/deleted', then('a')],
      ['/dir/under-deleted-dir', then('b')],
      ['/over', then('c')],
      ['/same', then('d')],
      ['/later', undefined],
      ['/old-metadata', then('e', { sha256: undefined })],
    ]);
    const now = new Map<string, ManifestEntry>([
      ['/deleted', tombstone(9)],
      ['/dir', tombstone(10)],
      ['/dir/under-deleted-dir', file('b', 2)],
      ['/over', file('f', 11)],
      ['/same', file('d', 3)],
      ['/later', file('g', 12)],
      ['/never-backed-up', file('h', 13)],
      ['/old-metadata', file('e', 4)],
    ]);
    assert.deepEqual(
      planRestore(backupThen, now).map((a) => [a.path, a.kind, a.kind === 'restore' ? a.because : '']),
      [
        ['/deleted', 'restore', 'deleted'],
        ['/dir/under-deleted-dir', 'restore', 'deleted'],
        ['/later', 'extra', ''],
        ['/never-backed-up', 'extra', ''],
        ['/old-metadata', 'unverifiable', ''],
        ['/over', 'restore', 'changed'],
        ['/same', 'unchanged', ''],
      ],
    );
  });

  it('keeps to the scope: --path /dir does not touch /dirx or files above', () => {
    const backupThen = new Map<string, VersionThen | undefined>([
      ['/dir/a', then('a')],
      ['/dirx', then('b')],
    ]);
    const now = new Map<string, ManifestEntry>([
      ['/dir/new', file('c', 5)],
      ['/top', file('d', 6)],
    ]);
    assert.deepEqual(
      planRestore(backupThen, now, '/dir').map((a) => [a.path, a.kind]),
      [
        ['/dir/a', 'restore'],
        ['/dir/new', 'extra'],
      ],
    );
  });
});
