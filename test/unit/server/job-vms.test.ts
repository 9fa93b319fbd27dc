import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { VmOutcome } from '../../../src/run/job-request.js';
import { type RunningServer } from '../../../src/server/index.js';
import { type Store } from '../../../src/store/store.js';
import { createExperiment, runExperiment, type Executor } from '../../../src/sweep/index.js';
import { auth, fakeStore, startApiServer } from '../../support/api-server.js';

const phases = { prepare: 1, boot: 100, restore: 0, stageIn: 10, exec: 200, stageOut: 10, shutdown: 50, collect: 1 };

/** A multi-VM job's attempts carry their VMs through `GET /api/experiments/:name/jobs/:idx` (what the job page draws). */
describe('the job API: a multi-VM job\'s VMs per attempt (no VMs: a fake executor)', { concurrency: 1 }, () => {
  let dir: string;
  let store: Store;
  let server: RunningServer;
  const get = async (path: string) => {
    const r = await fetch(new URL(path, server.url), { headers: auth });
    return { status: r.status, body: await r.json() as { attempts: { attempt: number; status: string; vms: VmOutcome[] | null }[] } };
  };
  // Attempt 1 fails on node1 (its error carries guest text), attempt 2 succeeds; job 2 has one VM.
  const vmsOf = (attempt: number): VmOutcome[] => [
    { index: 0, name: 'node0', machine: 'host-a', runId: `r0-${attempt}`, status: attempt === 1 ? 'error' : 'succeeded', start: 'restore', phases, totalMs: 371, usage: { cpuMs: 1200, maxRssKiB: 70_000, source: 'proc' } },
    { index: 1, name: 'node1', machine: 'host-b', runId: `r1-${attempt}`, status: attempt === 1 ? 'failed' : 'succeeded', phases, totalMs: 370,
      ...(attempt === 1 ? { error: '<img src=x onerror=alert(1)> exit 3' } : {}) },
  ];

  before(async () => {
    ({ dir, store } = fakeStore('vmwu-api-vms-'));
    writeFileSync(join(dir, 'p.pln'), 'parameter x integer range from 1 to 2\ntask main\n  exec work $x\nendtask\n');
    await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'pairs', retries: 1 });
    const executor: Executor = {
      name: 'fake-vms',
      async runAttempt(_s, ctx) {
        if (ctx.job.index === 2) return { runId: null, status: 'succeeded', exitCode: 0, phases, totalMs: 371 };
        return ctx.attempt === 1
          ? { runId: null, status: 'failed', exitCode: null, phases, totalMs: 371, error: { code: 'VM_FAILED', message: 'node1 failed' }, vms: vmsOf(1) }
          : { runId: null, status: 'succeeded', exitCode: 0, phases, totalMs: 371, vms: vmsOf(2) };
      },
    };
    const run = await runExperiment(store, 'pairs', { executor, backoff: { baseMs: 5, capMs: 20 }, pollMs: 5, host: () => ({ cores: 2, availableMemMiB: 100_000 }) });
    assert.equal(run.state, 'succeeded');
    server = await startApiServer(store, dir);
  });

  after(async () => {
    await server?.close();
    store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('each attempt has its own VMs, every field as recorded (the error as given, unaltered: the page escapes it)', async () => {
    const r = await get('/api/experiments/pairs/jobs/1');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.attempts.map((a) => [a.attempt, a.status]), [[1, 'failed'], [2, 'succeeded']]);
    assert.deepEqual(r.body.attempts.map((a) => a.vms), [vmsOf(1), vmsOf(2)]);
  });

  test('a job of one VM has vms: null, present in the answer', async () => {
    const r = await get('/api/experiments/pairs/jobs/2');
    assert.equal(r.status, 200);
    assert.equal(r.body.attempts.length, 1);
    assert.ok('vms' in r.body.attempts[0]!);
    assert.equal(r.body.attempts[0]!.vms, null);
  });

  test('the VMs need the token like the rest of the API', async () => {
    const r = await fetch(new URL('/api/experiments/pairs/jobs/1', server.url));
    assert.equal(r.status, 401);
  });
});
