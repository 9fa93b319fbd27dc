import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runSegmentVms } from '../../../src/run/segment-vms.js';

/** A VM that ends with `status` after `ms`, or when it is stopped (then `error`, as a stopped run is). */
function vm(status: string, ms: number, log: string[], k: number) {
  return (signal: AbortSignal) => new Promise<{ status: string }>((resolve) => {
    const stop = () => {
      clearTimeout(t);
      log.push(`${k} stopped`);
      resolve({ status: 'error' });
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', stop);
      log.push(`${k} ${status}`);
      resolve({ status });
    }, ms);
    signal.addEventListener('abort', stop);
  });
}

test('VM 0 ends: the others end of themselves within the grace; none failed', async () => {
  const log: string[] = [];
  const ends = ['succeeded', 'succeeded', 'succeeded'];
  const r = await runSegmentVms(3, (k, s) => vm(ends[k]!, [20, 40, 50][k]!, log, k)(s), { graceMs: 1000 });
  assert.equal(r.failed, undefined);
  assert.deepEqual(r.results.map((x) => x.status), ends);
});

test('VM 0 ends and another outlives the grace: it is stopped, and that is no failure', async () => {
  const log: string[] = [];
  const r = await runSegmentVms(2, (k, s) => vm('succeeded', [10, 10_000][k]!, log, k)(s), { graceMs: 30 });
  assert.equal(r.failed, undefined);
  assert.deepEqual(log, ['0 succeeded', '1 stopped']);
});

test('a VM that fails while VM 0 runs stops every VM and is named', async () => {
  const log: string[] = [];
  const r = await runSegmentVms(3, (k, s) => vm(k === 2 ? 'error' : 'succeeded', [10_000, 10_000, 20][k]!, log, k)(s));
  assert.equal(r.failed, 2);
  assert.deepEqual(log.sort(), ['0 stopped', '1 stopped', '2 error']);
});

test('VM 0 ending by its walltime releases no one: the others stop at once', async () => {
  const log: string[] = [];
  const r = await runSegmentVms(2, (k, s) => vm(k === 0 ? 'timeout' : 'succeeded', [10, 10_000][k]!, log, k)(s), { graceMs: 10_000 });
  assert.equal(r.failed, undefined);
  assert.deepEqual(log, ['0 timeout', '1 stopped']);
});

test('a VM that cannot start at all: the others are stopped and awaited before the error is passed on', async () => {
  const log: string[] = [];
  await assert.rejects(runSegmentVms(2, (k, s) => (k === 1 ? Promise.reject(new Error('no QEMU')) : vm('succeeded', 10_000, log, k)(s))), /no QEMU/);
  assert.deepEqual(log, ['0 stopped']);
});

test('the job interrupted: every VM stops', async () => {
  const log: string[] = [];
  const c = new AbortController();
  setTimeout(() => c.abort(), 20);
  const r = await runSegmentVms(2, (k, s) => vm('succeeded', 10_000, log, k)(s), { signal: c.signal });
  assert.equal(r.failed, undefined);
  assert.deepEqual(log.sort(), ['0 stopped', '1 stopped']);
});
