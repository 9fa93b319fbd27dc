import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { backoffMs } from '../../../src/sweep/backoff.js';
import { capacityRule } from '../../../src/sweep/capacity.js';
import { confineDestination, confinePath } from '../../../src/sweep/confine.js';
import { isInside } from '../../../src/paths.js';
import { afterAttempt, canTransition, effectiveState, finalState, recoverAttempt, type JobCounts } from '../../../src/sweep/states.js';

test('capacity: min(cores, floor(free × 0.8 / job memory)), explained', () => {
  const c = capacityRule({ cores: 8, availableMemMiB: 2000, jobMemoryMiB: 256, jobCpus: 1 });
  assert.equal(c.byMemory, 6);
  assert.equal(c.byCores, 8);
  assert.equal(c.slots, 6);
  assert.equal(c.explain, 'min(8 cores, floor(0.8 × 2000 MiB free / 256 MiB) = 6) = 6');
  assert.equal(capacityRule({ cores: 2, availableMemMiB: 24000, jobMemoryMiB: 256, jobCpus: 1 }).slots, 2);
});

test('capacity: multi-vCPU jobs divide the cores; never below one slot, and says so', () => {
  assert.equal(capacityRule({ cores: 8, availableMemMiB: 1e6, jobMemoryMiB: 256, jobCpus: 3 }).slots, 2);
  const tight = capacityRule({ cores: 4, availableMemMiB: 100, jobMemoryMiB: 4096, jobCpus: 1 });
  assert.equal(tight.byMemory, 0);
  assert.equal(tight.slots, 1);
  assert.match(tight.explain, /raised to 1$/);
});

test('backoff: 1 s, 2 s, 4 s … capped; none before the first failure', () => {
  assert.deepEqual([0, 1, 2, 3, 4].map((f) => backoffMs(f)), [0, 1000, 2000, 4000, 8000]);
  assert.equal(backoffMs(10), 60_000);
  assert.equal(backoffMs(1000), 60_000);
  assert.equal(backoffMs(3, { baseMs: 10, capMs: 25 }), 25);
});

test('confinement: relative paths stay, normalised; absolute, .. escapes, empty and the dir itself are refused', () => {
  assert.equal(confinePath('a/b.txt', 'x'), 'a/b.txt');
  assert.equal(confinePath('./a//b/../c.txt', 'x'), 'a/c.txt');
  assert.equal(confinePath('dir/', 'x'), 'dir');
  for (const bad of ['/etc/passwd', '..', '../x', 'a/../../x', '', '.', 'a/..', 'a\0b']) {
    assert.throws(() => confinePath(bad, 'copy'), (e: unknown) => isVmwuError(e) && e.code === 'PATH_ESCAPE' && e.message.startsWith('copy: '), bad);
  }
  assert.equal(confineDestination('results/', 'out.3', 'x'), 'results/out.3');
  assert.equal(confineDestination('.', 'sub/in.txt', 'x'), 'in.txt');
  assert.equal(confineDestination('o.txt', 'sub/in.txt', 'x'), 'o.txt');
  assert.ok(isInside('/a/b', '/a/b/c'));
  assert.ok(isInside('/a/b', '/a/b'));
  assert.ok(!isInside('/a/b', '/a/bc'));
});

test('job transitions: only the allowed ones', () => {
  assert.ok(canTransition('pending', 'running'));
  assert.ok(canTransition('running', 'pending'));
  assert.ok(canTransition('cancelled', 'pending'));
  assert.ok(!canTransition('succeeded', 'pending'));
  assert.ok(!canTransition('succeeded', 'running'));
  assert.ok(!canTransition('failed', 'running'));
  assert.ok(!canTransition('pending', 'succeeded'));
});

test('after an attempt: success is final; failures retry with backoff up to the limit; interruptions do not count', () => {
  const now = 1_000_000;
  assert.deepEqual(afterAttempt('succeeded', 1, 2, now), { state: 'succeeded', failures: 1, notBefore: 0 });
  assert.deepEqual(afterAttempt('failed', 0, 2, now), { state: 'pending', failures: 1, notBefore: now + 1000 });
  assert.deepEqual(afterAttempt('timeout', 1, 2, now), { state: 'pending', failures: 2, notBefore: now + 2000 });
  assert.deepEqual(afterAttempt('error', 2, 2, now), { state: 'failed', failures: 3, notBefore: 0 });
  assert.deepEqual(afterAttempt('failed', 0, 0, now), { state: 'failed', failures: 1, notBefore: 0 });
  assert.deepEqual(afterAttempt('interrupted', 2, 2, now), { state: 'pending', failures: 2, notBefore: 0 });
  assert.deepEqual(afterAttempt('cancelled', 0, 2, now), { state: 'cancelled', failures: 0, notBefore: 0 });
});

test('experiment end state follows the jobs; a dead runner shows as stopped', () => {
  const c = (o: Partial<JobCounts>): JobCounts => ({ pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, total: 0, ...o });
  assert.equal(finalState(c({ succeeded: 3 })), 'succeeded');
  assert.equal(finalState(c({ succeeded: 2, failed: 1 })), 'failed');
  assert.equal(finalState(c({ succeeded: 2, cancelled: 1 })), 'cancelled');
  assert.equal(finalState(c({ succeeded: 2, pending: 1 })), undefined);
  assert.equal(effectiveState('running', false), 'stopped');
  assert.equal(effectiveState('running', true), 'running');
  assert.equal(effectiveState('succeeded', false), 'succeeded');
});

test('recovery: a finished run is adopted, a lost or interrupted one is re-run', () => {
  assert.deepEqual(recoverAttempt({ status: 'succeeded' }), { adopt: 'succeeded' });
  assert.deepEqual(recoverAttempt({ status: 'failed' }), { adopt: 'failed' });
  assert.equal(recoverAttempt(undefined), 'interrupted');
  assert.equal(recoverAttempt({ status: 'error', errorCode: 'INTERRUPTED' }), 'interrupted');
  assert.equal(recoverAttempt({ status: 'running' }), 'interrupted');
});
