import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { registerBase } from '../../../src/store/bases.js';
import type { Digest } from '../../../src/store/blobs.js';
import { openStore } from '../../../src/store/store.js';
import { createExperiment, getExperiment, getJob, listAttempts, runExperiment, type Executor } from '../../../src/sweep/index.js';
import { retryJob } from '../../../src/sweep/retry-job.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const fast = { backoff: { baseMs: 5, capMs: 20 }, pollMs: 5, host: () => ({ cores: 2, availableMemMiB: 100_000 }) };

function exec(code: (job: number) => number): Executor {
  return {
    name: 'fake',
    async runAttempt(_s, ctx) {
      const c = code(ctx.job.index);
      mkdirSync(join(ctx.outDir, 'work'), { recursive: true });
      writeFileSync(join(ctx.outDir, 'run.json'), JSON.stringify({ status: c ? 'failed' : 'succeeded', exitCode: c }));
      return { runId: null, status: c ? 'failed' : 'succeeded', exitCode: c, phases: null, totalMs: 1 };
    },
  };
}

test('retryJob: a failed job of a failed experiment runs again with a fresh retry budget; its history is kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-retry-'));
  const store = openStore(join(dir, 'store'));
  registerBase(store.db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
  writeFileSync(join(dir, 'p.pln'), 'parameter x integer range from 1 to 3\ntask main\n  exec work $x\nendtask\n');
  await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'r', retries: 0 });
  let broken = true;
  await runExperiment(store, 'r', { ...fast, executor: exec((j) => (j === 2 && broken ? 3 : 0)) });
  assert.equal(getExperiment(store.db, 'r')!.state, 'failed');
  assert.equal(getJob(store.db, 'r', 2)!.state, 'failed');

  assert.throws(() => retryJob(store.db, 'r', 1), (e: unknown) => isVmwuError(e) && e.code === 'BAD_STATE');
  assert.throws(() => retryJob(store.db, 'r', 9), (e: unknown) => isVmwuError(e) && e.code === 'NO_JOB');
  const r = retryJob(store.db, 'r', 2, () => false);
  assert.deepEqual(r, { job: 2, runnerAlive: false });
  const j = getJob(store.db, 'r', 2)!;
  assert.deepEqual([j.state, j.failures, j.error, j.finishedAt], ['pending', 0, null, null]);
  assert.equal(getExperiment(store.db, 'r')!.state, 'stopped');

  broken = false;
  const s = await runExperiment(store, 'r', { ...fast, executor: exec(() => 0) });
  assert.equal(s.state, 'succeeded');
  assert.deepEqual(listAttempts(store.db, 'r', 2).map((a) => a.status), ['failed', 'succeeded']);
  assert.equal(listAttempts(store.db, 'r', 1).length, 1, 'the other jobs did not run again');
  store.close();
});
