import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { lostAttempts, lostGraceMs, lostOutcome } from '../../../../src/executors/slurm/lost-tasks.js';
import { slurmDir } from '../../../../src/executors/slurm/rounds.js';
import { recordStartedAttempt } from '../../../../src/sweep/records/lifecycle.js';
import { attemptDir, ensureExperimentDir } from '../../../../src/sweep/experiment.js';
import { storeWithExperiment } from '../../../support/fake-experiment.js';

test('a task gone from the queue without a result: lost with its node (uncounted), or failed with the reason', () => {
  const tail = { file: '/s/slurm/5_2.out', last: undefined };
  const acct = (state: string) => ({ state, node: 'n2', cpuMs: 0, maxRssKiB: undefined });
  const nodeFail = lostOutcome('5_2', acct('NODE_FAIL'), true, tail, false);
  assert.equal(nodeFail.status, 'interrupted');
  assert.equal(nodeFail.error, 'lost: Slurm task 5_2 ended NODE_FAIL on node n2');
  assert.equal(lostOutcome('5_2', acct('PREEMPTED'), true, tail, false).status, 'interrupted');
  const oom = lostOutcome('5_2', acct('OUT_OF_MEMORY'), true, { ...tail, last: 'slurmstepd: error: Detected 1 oom-kill event' }, false);
  assert.equal(oom.status, 'error');
  assert.match(oom.error!, /ended OUT_OF_MEMORY without a result: slurmstepd: error: Detected 1 oom-kill event \(\/s\/slurm\/5_2.out\)/);
  // Without accounting, the output file is the witness.
  const check = lostOutcome('5_2', undefined, false, { ...tail, last: 'vmwu: node n7 cannot run work units: qemu-system-x86_64 is not on PATH' }, false);
  assert.equal(check.status, 'error');
  assert.match(check.error!, /cannot run work units/);
  assert.equal(lostOutcome('5_2', undefined, true, tail, false).status, 'interrupted', 'started, then vanished without a word');
  assert.equal(lostOutcome('5_2', undefined, true, { ...tail, last: 'slurmstepd: error: *** JOB 5 ON n2 CANCELLED AT 2026 DUE TO TIME LIMIT ***' }, false).status, 'error');
  assert.equal(lostOutcome('5_2', acct('FAILED'), true, tail, true).status, 'cancelled', 'while cancelling, whatever happened');
});

test('the grace for a gone task\'s report: VMWU_SLURM_GRACE_MS, else 30 s', () => {
  assert.equal(lostGraceMs({}), 30_000);
  assert.equal(lostGraceMs({ VMWU_SLURM_GRACE_MS: '2000' }), 2000);
  assert.equal(lostGraceMs({ VMWU_SLURM_GRACE_MS: 'soon' }), 30_000);
});

test('gone tasks: the node from sacct, else the attempt\'s host; a task that never started fails with its output\'s last line', async () => {
  const { store, e } = await storeWithExperiment('gone', 3);
  ensureExperimentDir(e);
  mkdirSync(slurmDir(e), { recursive: true });
  recordStartedAttempt(store.db, { experiment: 'gone', job: 2, attempt: 1, owner: 'me', runner: 'me', host: 'n5', runId: null, batchId: '8_2', outDir: attemptDir(e, 2, 1), at: new Date().toISOString() });
  writeFileSync(join(slurmDir(e), '8_3.out'), 'vmwu: node n7 cannot run work units: qemu-system-x86_64 is not on PATH\n\n');
  const task = (job: number) => ({ job, attempt: 1, taskId: job, submission: 1, slurmJobId: '8' });
  const got = lostAttempts(store.db, e, [task(1), task(2), task(3)], new Map([['8_1', { state: 'NODE_FAIL', node: 'n2', cpuMs: undefined, maxRssKiB: undefined }]]));
  assert.deepEqual(got.map((x) => [x.key, x.host, x.outcome.status]), [['8_1', 'n2', 'interrupted'], ['8_2', 'n5', 'interrupted'], ['8_3', null, 'error']]);
  assert.match(got[2]!.outcome.error!, /8_3 ended without a result: vmwu: node n7 cannot run work units/);
  store.close();
});
