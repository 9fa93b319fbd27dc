import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TaskAccounting } from '../../../../src/executors/slurm/accounting.js';
import { AwaitedUsage } from '../../../../src/executors/slurm/usage.js';

function harness(answers: (Map<string, TaskAccounting> | undefined)[]) {
  let t = 0;
  const asked: string[][] = [];
  const recorded: [number, number, number, number][] = [];
  const usage = new AwaitedUsage({
    everyMs: 30_000, now: () => t,
    sacct: async (ids) => {
      asked.push(ids);
      return answers.shift();
    },
    record: (job, attempt, u) => recorded.push([job, attempt, u.cpuMs, u.maxRssKiB]),
  });
  return { usage, asked, recorded, at: (ms: number) => (t = ms) };
}
const acct = (state: string, cpuMs?: number, maxRssKiB?: number): TaskAccounting => ({ state, node: 'n1', cpuMs, maxRssKiB });

test('usage of finished tasks is asked of sacct in one call, at most every everyMs, and recorded once it is complete', async () => {
  const h = harness([
    new Map([['5_1', acct('COMPLETED', 1200, 50_000)], ['5_2', acct('RUNNING', 10, 100)], ['6_1', acct('COMPLETED', undefined, 3)]]),
    new Map([['5_2', acct('COMPLETED', 900, 40_000)], ['6_1', acct('COMPLETED', 5, 6)]]),
  ]);
  await h.usage.collect();
  assert.deepEqual(h.asked, [], 'nothing awaited: sacct is not asked');
  h.at(40_000);
  h.usage.expect('5_1', 1, 1);
  h.usage.expect('5_2', 2, 1);
  h.usage.expect('6_1', 3, 2);
  await h.usage.collect();
  assert.deepEqual(h.asked, [['5', '6']], 'each array once');
  assert.deepEqual(h.recorded, [[1, 1, 1200, 50_000]], 'a task still running, or without its MaxRSS yet, waits');
  assert.equal(h.usage.size, 2);
  h.at(50_000);
  await h.usage.collect();
  assert.equal(h.asked.length, 1, 'not again before everyMs');
  await h.usage.collect(true);
  assert.deepEqual(h.recorded.slice(1), [[2, 1, 900, 40_000], [3, 2, 5, 6]], 'forced (the last look at the end)');
  assert.equal(h.usage.size, 0);
});

test('a failed sacct keeps every task awaited; one whose accounting never comes is given up after two minutes', async () => {
  const h = harness([undefined, new Map(), new Map()]);
  h.usage.expect('9_1', 1, 1);
  await h.usage.collect(true);
  assert.equal(h.usage.size, 1, 'sacct failed: asked again later');
  h.at(60_000);
  await h.usage.collect(true);
  assert.equal(h.usage.size, 1, 'not known yet, still waited for');
  h.at(120_001);
  await h.usage.collect(true);
  assert.equal(h.usage.size, 0);
  assert.deepEqual(h.recorded, []);
});
