import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatBackends, parseBackends } from './backends.ts';

describe('parseBackends', () => {
  it('parses names, URLs and SSH addresses, keeping the configured order', () => {
    const backends = parseBackends('b2=http://127.0.0.1:4002|127.0.0.1:5002, b1=https://charm1:35354');
    assert.deepEqual(backends, [
      { name: 'b2', httpUrl: 'http://127.0.0.1:4002', sshHost: '127.0.0.1', sshPort: 5002 },
      { name: 'b1', httpUrl: 'https://charm1:35354', sshHost: 'charm1', sshPort: 35353 },
    ]);
    assert.deepEqual(parseBackends(formatBackends(backends)), backends);
  });

  it('rejects what it cannot use, saying which entry', () => {
    assert.throws(() => parseBackends(''), /no backends/);
    assert.throws(() => parseBackends('http://x:1'), /expected name=httpUrl/);
    assert.throws(() => parseBackends('a=ftp://x'), /http:\/\//);
    assert.throws(() => parseBackends('a=http://x|x:99999'), /bad SSH port/);
    assert.throws(() => parseBackends('a=http://x,a=http://y'), /used twice/);
  });
});
