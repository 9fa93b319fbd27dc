import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSacct, parseSlurmDuration, parseSlurmSize, parseSqueue } from '../../../../src/executors/slurm/accounting.js';
import { lostOutcome } from '../../../../src/executors/slurm/runner.js';

test('squeue: one line per array task, in one call for all arrays', () => {
  const q = parseSqueue('4_2|PENDING|\n4_3|PENDING|\n4_1|RUNNING|n1\n7_12|COMPLETING|n3\n\n');
  assert.equal(q.size, 4);
  assert.deepEqual(q.get('4_1'), { state: 'RUNNING', node: 'n1' });
  assert.deepEqual(q.get('4_2'), { state: 'PENDING', node: '' });
});

test('Slurm durations and sizes', () => {
  assert.equal(parseSlurmDuration('00:01.600'), 1600);
  assert.equal(parseSlurmDuration('00:02:05'), 125_000);
  assert.equal(parseSlurmDuration('01:02:03'), 3_723_000);
  assert.equal(parseSlurmDuration('2-01:00:00'), 2 * 86_400_000 + 3_600_000);
  assert.equal(parseSlurmDuration('nonsense'), undefined);
  assert.equal(parseSlurmSize('66228K'), 66228);
  assert.equal(parseSlurmSize('1.5M'), 1536);
  assert.equal(parseSlurmSize('2G'), 2 * 1024 * 1024);
  assert.equal(parseSlurmSize('0'), 0);
  assert.equal(parseSlurmSize(''), undefined);
});

test('sacct: state and node of the allocation, TotalCPU summed over steps, MaxRSS of the batch step', () => {
  // As printed by slurm 22.05: `sacct -n -P -o JobID,State,NodeList,TotalCPU,MaxRSS -j 1,2`.
  const a = parseSacct([
    '1_1|COMPLETED|n1|00:01.600|', '1_1.batch|COMPLETED|n1|00:01.600|66228K',
    '1_2|NODE_FAIL|n2|00:00:00|', '1_2.batch|CANCELLED|n2|00:00:00|',
    '1_3|CANCELLED by 0|n3|00:00.500|', '1_3.batch|CANCELLED|n3|00:00.500|1.5M',
    '24|COMPLETED|n1|00:01.000|', // a task still shown under its raw id: skipped, asked again later
  ].join('\n'));
  assert.deepEqual(a.get('1_1'), { state: 'COMPLETED', node: 'n1', cpuMs: 1600, maxRssKiB: 66228 });
  assert.deepEqual(a.get('1_2'), { state: 'NODE_FAIL', node: 'n2', cpuMs: 0, maxRssKiB: undefined });
  assert.equal(a.get('1_3')!.state, 'CANCELLED');
  assert.equal(a.get('1_3')!.maxRssKiB, 1536);
  assert.equal(a.has('24'), false);
});

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
