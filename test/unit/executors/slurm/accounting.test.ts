import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSacct, parseSlurmDuration, parseSlurmSize, parseSqueue } from '../../../../src/executors/slurm/accounting.js';

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
