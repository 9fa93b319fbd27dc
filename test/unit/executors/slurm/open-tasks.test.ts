import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OpenTasks, taskKey } from '../../../../src/executors/slurm/open-tasks.js';
import type { OpenTask } from '../../../../src/executors/slurm/submissions.js';

const task = (job: number, slurmJobId: string, taskId = job): OpenTask => ({ job, attempt: 1, taskId, submission: 1, slurmJobId });

test('open tasks are tracked by "ARRAYJOB_TASK" and forgotten by job and attempt', () => {
  const t = new OpenTasks([task(1, '40'), task(2, '40')]);
  t.track(task(3, '41', 0));
  assert.equal(t.size, 3);
  assert.equal(taskKey(task(3, '41', 0)), '41_0');
  assert.deepEqual(t.arrays(), ['40', '41'], 'each array once: one squeue call for them all');
  assert.equal(t.untrack(2, 1), '40_2');
  assert.equal(t.untrack(2, 1), undefined, 'settled twice: nothing the second time');
  assert.equal(t.untrack(1, 2), undefined, 'another attempt of the job was never out');
  assert.equal(t.size, 2);
});

test('a task missing from the queue, or ended there, is gone from the first time it is seen so; a queued one is not', () => {
  const t = new OpenTasks([task(1, '7'), task(2, '7'), task(3, '7')]);
  t.observeQueue(new Map([['7_1', { state: 'RUNNING', node: 'n1' }], ['7_2', { state: 'COMPLETED', node: 'n1' }]]), 1000);
  assert.deepEqual(t.goneFor(0, 1000).map((x) => x.job), [2, 3], 'ended, and missing');
  assert.deepEqual(t.goneFor(500, 1400), [], 'within the grace, its report may still come');
  t.observeQueue(new Map([['7_1', { state: 'RUNNING', node: 'n1' }]]), 1300);
  assert.deepEqual(t.goneFor(500, 1500).map((x) => x.job), [2, 3], 'gone since the first look, not the last');
  t.observeQueue(new Map([['7_1', { state: 'RUNNING', node: 'n1' }], ['7_3', { state: 'PENDING', node: '' }]]), 1600);
  assert.deepEqual(t.goneFor(0, 1600).map((x) => x.job), [2], 'back in the queue (squeue missed it once): not gone');
  t.untrack(2, 1);
  assert.deepEqual(t.goneFor(0, 9999), [], 'a settled task is no longer watched');
});
