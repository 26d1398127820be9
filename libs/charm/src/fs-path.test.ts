import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ancestorsOf, cleanFsPath, fsPathFromUrl, goEscapedPath, isWithin } from './fs-path.ts';

describe('cleanFsPath', () => {
  it('applies Go path.Clean to a rooted path', () => {
    const cases: [string, string][] = [
      ['', '/'],
      ['/', '/'],
      ['//', '/'],
      ['/a', '/a'],
      ['a/b', '/a/b'],
      ['/a/', '/a'],
      ['//a//b//', '/a/b'],
      ['/./a/./b/.', '/a/b'],
      ['/a/b/..', '/a'],
      ['/a/../b', '/b'],
      ['/..', '/'],
      ['/../../db/x', '/db/x'],
      ['/a/../../..', '/'],
      ['/a/.../b', '/a/.../b'],
      ['/a/..b/c', '/a/..b/c'],
    ];
    for (const [raw, clean] of cases) assert.equal(cleanFsPath(raw), clean, raw);
  });

  it('keeps %xx escapes literally', () => {
    assert.equal(cleanFsPath('/a%2Fb/%2e%2e/c'), '/a%2Fb/%2e%2e/c');
  });
});

describe('fsPathFromUrl', () => {
  it('returns the cleaned path and the query', () => {
    const result = fsPathFromUrl('/v1/fs//abc/../def?mode=420');
    assert.equal(result?.path, '/def');
    assert.equal(result?.query.get('mode'), '420');
  });

  it('maps /v1/fs/ to the root and refuses what is not an fs route', () => {
    assert.equal(fsPathFromUrl('/v1/fs/')?.path, '/');
    assert.equal(fsPathFromUrl('/v1/fs//')?.path, '/');
    assert.equal(fsPathFromUrl('/v1/fs/..')?.path, '/');
    assert.equal(fsPathFromUrl('/v1/fs'), undefined);
    assert.equal(fsPathFromUrl('/v1/fs?x=/v1/fs/'), undefined);
    assert.equal(fsPathFromUrl('/v1/fsx/a'), undefined);
    assert.equal(fsPathFromUrl('/v1/seq/a'), undefined);
    assert.equal(fsPathFromUrl('/v1/%66s/a'), undefined);
  });

  it('accepts the absolute form', () => {
    assert.equal(fsPathFromUrl('http://localhost:35354/v1/fs/a/b?mode=0')?.path, '/a/b');
  });

  it('reproduces Go URL.EscapedPath: valid escapes stay, other characters are escaped again', () => {
    assert.equal(fsPathFromUrl('/v1/fs/a%2Fb')?.path, '/a%2Fb');
    assert.equal(fsPathFromUrl('/v1/fs/%41b')?.path, '/%41b');
    assert.equal(fsPathFromUrl("/v1/fs/a!$&'()*+,;=:@[]~b")?.path, "/a!$&'()*+,;=:@[]~b");
    // One character Go would escape makes it escape the decoded path, which also decodes %41.
    assert.equal(fsPathFromUrl('/v1/fs/%41"b')?.path, '/A%22b');
    assert.equal(fsPathFromUrl('/v1/fs/a#b')?.path, '/a%23b');
    assert.equal(fsPathFromUrl("/v1/fs/(x)|'")?.path, '/%28x%29%7C%27');
    assert.equal(fsPathFromUrl('/v1/%66s/a"')?.path, '/a%22');
  });

  it('refuses malformed escapes, which the server answers with 400', () => {
    assert.equal(fsPathFromUrl('/v1/fs/a%zz'), undefined);
    assert.equal(fsPathFromUrl('/v1/fs/a%4'), undefined);
  });
});

describe('goEscapedPath', () => {
  it('escapes non-ASCII characters as UTF-8 bytes', () => {
    assert.equal(goEscapedPath('/é"'), '/%C3%A9%22');
  });
});

describe('isWithin', () => {
  it('is true for the prefix itself and everything below it', () => {
    assert.equal(isWithin('/a', '/a'), true);
    assert.equal(isWithin('/a/b', '/a'), true);
    assert.equal(isWithin('/a/b/c', '/a/b'), true);
    assert.equal(isWithin('/ab', '/a'), false);
    assert.equal(isWithin('/a', '/a/b'), false);
    assert.equal(isWithin('/b', '/a'), false);
  });

  it('puts everything within /', () => {
    assert.equal(isWithin('/', '/'), true);
    assert.equal(isWithin('/x/y', '/'), true);
    assert.equal(isWithin('/x', ''), true);
  });

  it('compares cleaned paths', () => {
    assert.equal(isWithin('//a/./b', '/a/'), true);
    assert.equal(isWithin('/a/../b', '/a'), false);
  });
});

describe('ancestorsOf', () => {
  it('lists the root, each ancestor and the path', () => {
    assert.deepEqual(ancestorsOf('/'), ['/']);
    assert.deepEqual(ancestorsOf('/a'), ['/', '/a']);
    assert.deepEqual(ancestorsOf('/a/b'), ['/', '/a', '/a/b']);
    assert.deepEqual(ancestorsOf('//a/b/c/'), ['/', '/a', '/a/b', '/a/b/c']);
  });
});
