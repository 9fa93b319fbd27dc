import assert from 'node:assert/strict';
import { test } from 'node:test';
import { notCachedBecause } from '../../../src/run/run-cache.js';
import type { RunRequest } from '../../../src/run/job-request.js';

const req: RunRequest = { base: 'tiny', argv: ['true'], memoryMiB: 256, cpus: 1, timeoutMs: 60_000, maxOutputBytes: 1 << 20 };

test('vmwu run takes a cached result unless it is off, the job has a network (without --cache), or it is a build, shell or restore', () => {
  assert.equal(notCachedBecause(req, {}), undefined);
  assert.match(notCachedBecause(req, { off: true })!, /off/);
  assert.match(notCachedBecause({ ...req, network: true }, {})!, /network/);
  assert.equal(notCachedBecause({ ...req, network: true }, { force: true }), undefined, '--cache');
  assert.match(notCachedBecause({ ...req, network: true }, { force: true, off: true })!, /off/, '--no-cache wins');
  for (const kind of [{ keepRoot: '/l' }, { cut: { argv: ['x'], keep: '/k' } }, { tty: { rows: 1, cols: 1, term: 'vt100' } }, { resumeFrom: '/c' }]) {
    assert.match(notCachedBecause({ ...req, ...kind }, {})!, /never cached/);
  }
});
