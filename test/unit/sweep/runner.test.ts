import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { processStartTime, selfIdentity } from '../../../src/store/process-identity.js';
import { registerBase } from '../../../src/store/bases.js';
import type { Digest } from '../../../src/store/blobs.js';
import { openStore, type Store } from '../../../src/store/store.js';
import {
  createExperiment, experimentResults, experimentStatus, getExperiment, listAttempts, runExperiment,
  type AttemptContext, type Executor,
} from '../../../src/sweep/index.js';
import { claimExperiment, claimNext, setAttemptRun } from '../../../src/sweep/records/lifecycle.js';
import { jobCounts } from '../../../src/sweep/records/reads.js';
import { listLeases } from '../../../src/sweep/slots.js';
import { jobParams } from '../../../src/sweep/job-launch.js';
import { stageInEntries, stageOut } from '../../../src/sweep/staging.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const fast = { backoff: { baseMs: 5, capMs: 20 }, pollMs: 5, host: () => ({ cores: 2, availableMemMiB: 100_000 }) };

function setup(plan: string): { store: Store; planPath: string; root: string } {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-sweep-'));
  const store = openStore(join(dir, 'store'));
  registerBase(store.db, {
    name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'),
    root: d('3'), cmdline: '', size: 0, virtualSize: 0,
  });
  const root = join(dir, 'exp');
  mkdirSync(root);
  writeFileSync(join(root, 'plan.pln'), plan);
  return { store, planPath: join(root, 'plan.pln'), root };
}

const PLAN = (n: number) => `parameter x integer range from 1 to ${n}\ntask main\n  exec work $x\n  copy node:out.txt root:out-\${jobindex}.txt\nendtask\n`;

interface Stats { running: number; max: number; started: string[] }

/**
 * Stands in for QEMU: writes what a collected run leaves (work/out.txt, stderr,
 * run.json) and returns `exit(ctx)`; a negative exit waits until aborted.
 */
function fakeExecutor(exit: (ctx: AttemptContext) => number, stats: Stats = { running: 0, max: 0, started: [] }, delayMs = 5): Executor {
  return {
    name: 'fake',
    async runAttempt(_store, ctx) {
      stats.running++;
      stats.max = Math.max(stats.max, stats.running);
      const runId = `${ctx.experiment.name}-${ctx.job.index}-${ctx.attempt}`;
      stats.started.push(runId);
      ctx.onRunId(runId);
      const code = exit(ctx);
      await new Promise<void>((res) => {
        if (code >= 0) setTimeout(res, delayMs);
        if (ctx.signal.aborted) res();
        ctx.signal.addEventListener('abort', () => res());
      });
      stats.running--;
      mkdirSync(join(ctx.outDir, 'work'), { recursive: true });
      writeFileSync(join(ctx.outDir, 'work', 'out.txt'), `job ${ctx.job.index} attempt ${ctx.attempt}\n`);
      writeFileSync(join(ctx.outDir, 'stderr'), code > 0 ? `vmwu: command 1 failed with status ${code}: exec work\n` : '');
      if (ctx.signal.aborted && code < 0) {
        return { runId, status: 'error', exitCode: null, phases: null, totalMs: 1, error: { code: 'INTERRUPTED', message: 'interrupted' } };
      }
      const status = code === 0 ? 'succeeded' : 'failed';
      writeFileSync(join(ctx.outDir, 'run.json'), JSON.stringify({ id: runId, status, exitCode: code }));
      return { runId, status, exitCode: code, phases: null, totalMs: 10 };
    },
  };
}

/** Exactly once: every job settled, and no job has two succeeded attempts. */
function assertExactlyOnce(store: Store, name: string): void {
  const ok = new Map<number, number>();
  for (const a of listAttempts(store.db, name)) if (a.status === 'succeeded') ok.set(a.job, (ok.get(a.job) ?? 0) + 1);
  for (const [job, n] of ok) assert.equal(n, 1, `job ${job} succeeded ${n} times`);
  assert.equal(jobCounts(store.db, name).running, 0);
  assert.deepEqual(listLeases(store.db), [], 'no slot lease left');
}

test('10,000 jobs are planned and stored in one transaction', async () => {
  const { store, planPath } = setup('parameter a integer range from 1 to 100\nparameter b integer range from 1 to 100\ntask main\n  exec echo $a $b\nendtask\n');
  const e = await createExperiment(store, { planPath, base: 'fake', name: 'big' });
  assert.equal(e.jobCount, 10_000);
  assert.equal(jobCounts(store.db, 'big').pending, 10_000);
  assert.equal(e.state, 'created');
  assert.equal(readFileSync(join(e.dir, 'plan.pln'), 'utf8').length > 0, true);
  store.close();
});

test('a plan that would write outside the experiment is refused at creation and nothing is stored', async () => {
  const { store, planPath } = setup('parameter x integer range from 1 to 3\ntask main\n  copy node:o root:../o-$x\nendtask\n');
  await assert.rejects(createExperiment(store, { planPath, base: 'fake', name: 'bad' }), (e: unknown) => isVmwuError(e) && e.code === 'PATH_ESCAPE' && /job 1, command 1/.test(e.message));
  assert.equal(getExperiment(store.db, 'bad'), undefined);
  store.close();
});

test('the seed is recorded, so random draws are the same when the experiment is looked at again', async () => {
  const { store, planPath } = setup('parameter r float random from 0 to 1 points 3\ntask main\n  exec echo $r\nendtask\n');
  const a = await createExperiment(store, { planPath, base: 'fake', name: 'a', seed: 42 });
  const b = await createExperiment(store, { planPath, base: 'fake', name: 'b' });
  assert.equal(a.seed, 42);
  assert.equal(typeof b.seed, 'number');
  const pa = experimentResults(store, 'a').map((j) => j.params.r);
  const again = await createExperiment(store, { planPath, base: 'fake', name: 'a2', seed: 42 });
  assert.deepEqual(experimentResults(store, again.name).map((j) => j.params.r), pa);
  store.close();
});

test('a failed attempt is retried after backoff; every job succeeds once; outputs are staged into results/', async () => {
  const { store, planPath } = setup(PLAN(6));
  const e = await createExperiment(store, { planPath, base: 'fake', name: 'retry', retries: 2 });
  const events: string[] = [];
  const s = await runExperiment(store, 'retry', {
    ...fast, executor: fakeExecutor((c) => (c.job.index === 3 && c.attempt === 1 ? 1 : 0)),
    onEvent: (ev) => {
      if (ev.type === 'job-end') events.push(`${ev.job}:${ev.attempt}:${ev.status}:${ev.next}`);
    },
  });
  assert.equal(s.state, 'succeeded');
  assert.ok(events.includes('3:1:failed:pending'));
  assert.ok(events.includes('3:2:succeeded:succeeded'));
  const r = experimentResults(store, 'retry');
  assert.deepEqual(r.map((j) => j.status), Array(6).fill('succeeded'));
  assert.equal(r[2]!.attempts, 2);
  assert.deepEqual(r[2]!.history.map((h) => h.status), ['failed', 'succeeded']);
  assert.match(r[2]!.history[0]!.error!, /exit status 1: vmwu: command 1 failed/);
  for (const j of r) {
    assert.deepEqual(j.outputs, [join(e.dir, 'results', `out-${j.job}.txt`)]);
    assert.equal(readFileSync(j.outputs[0]!, 'utf8'), `job ${j.job} attempt ${j.attempts}\n`);
  }
  assertExactlyOnce(store, 'retry');
  store.close();
});

test('a job that keeps failing gives up after its retries; status names it with the reason', async () => {
  const { store, planPath } = setup(PLAN(3));
  await createExperiment(store, { planPath, base: 'fake', name: 'giveup', retries: 1 });
  const s = await runExperiment(store, 'giveup', { ...fast, executor: fakeExecutor((c) => (c.job.index === 2 ? 4 : 0)) });
  assert.equal(s.state, 'failed');
  const st = experimentStatus(store, 'giveup');
  assert.deepEqual([st.counts.succeeded, st.counts.failed], [2, 1]);
  assert.equal(st.failures.length, 1);
  assert.equal(st.failures[0]!.job, 2);
  assert.equal(st.failures[0]!.attempts, 2);
  assert.equal(st.failures[0]!.exitCode, 4);
  assert.match(st.failures[0]!.error!, /^exit status 4: vmwu: command 1 failed with status 4/);
  assert.deepEqual(experimentResults(store, 'giveup')[1]!.outputs, [], 'a failed job stages nothing out');
  assertExactlyOnce(store, 'giveup');
  store.close();
});

test('cancel: the runner sees the request, stops its attempts (not counted as failures) and cancels the rest', async () => {
  const { store, planPath } = setup(PLAN(8));
  await createExperiment(store, { planPath, base: 'fake', name: 'cancel', slots: 2 });
  const stats: Stats = { running: 0, max: 0, started: [] };
  const s = await runExperiment(store, 'cancel', {
    ...fast, executor: fakeExecutor(() => -1, stats),
    onEvent: (ev) => {
      if (ev.type === 'job-start' && ev.job === 2) store.db.prepare(`UPDATE experiments SET state = 'cancelling' WHERE name = 'cancel'`).run();
    },
  });
  assert.equal(s.state, 'cancelled');
  assert.deepEqual(stats.started.length, 2);
  const c = jobCounts(store.db, 'cancel');
  assert.deepEqual([c.cancelled, c.pending, c.running, c.failed], [8, 0, 0, 0]);
  assert.deepEqual(listAttempts(store.db, 'cancel').map((a) => a.status), ['cancelled', 'cancelled']);
  assertExactlyOnce(store, 'cancel');
  store.close();
});

test('interrupt (signal) leaves a stopped experiment; resume finishes it without re-running what succeeded', async () => {
  const { store, planPath } = setup(PLAN(6));
  await createExperiment(store, { planPath, base: 'fake', name: 'intr', slots: 2 });
  const ac = new AbortController();
  let done = 0;
  const first = await runExperiment(store, 'intr', {
    ...fast, signal: ac.signal, executor: fakeExecutor((c) => (c.job.index <= 2 ? 0 : -1)),
    onEvent: (ev) => {
      if (ev.type === 'job-end' && ev.status === 'succeeded' && ++done === 2) setTimeout(() => ac.abort(), 20);
    },
  });
  assert.equal(first.state, 'stopped');
  assert.equal(first.counts.succeeded, 2);
  assert.equal(first.counts.running, 0);
  assert.ok(listAttempts(store.db, 'intr').some((a) => a.status === 'interrupted'));
  const stats: Stats = { running: 0, max: 0, started: [] };
  const second = await runExperiment(store, 'intr', { ...fast, executor: fakeExecutor(() => 0, stats) });
  assert.equal(second.state, 'succeeded');
  assert.ok(stats.started.every((id) => !/-(1|2)-\d+$/.test(id)), `succeeded jobs were not re-run: ${stats.started.join(' ')}`);
  assert.equal(experimentResults(store, 'intr').every((j) => j.history.filter((h) => h.status === 'interrupted').every((h) => h.error === 'interrupted')), true);
  assertExactlyOnce(store, 'intr');
  store.close();
});

test('crash recovery: a dead runner\'s finished attempt is adopted, its lost ones re-run, its leases reclaimed', async () => {
  const { store, planPath } = setup(PLAN(5));
  const e = await createExperiment(store, { planPath, base: 'fake', name: 'crash', slots: 3 });
  const dead = `${process.pid}:not-a-start-time`;
  claimExperiment(store.db, 'crash', dead, { restartCancelled: true, isAlive: () => false });
  const claims = [1, 2, 3].map(() => claimNext(store.db, {
    experiment: 'crash', owner: dead, nowMs: Date.now(), perExperiment: 3, hostSlots: 3, memoryMiB: 256, cpus: 1,
    outDir: (j, n) => join(e.dir, 'jobs', String(j), `attempt-${n}`), isAlive: () => true,
  }));
  assert.deepEqual(claims.map((c) => c.kind), ['claimed', 'claimed', 'claimed']);
  assert.equal(listLeases(store.db).length, 3);
  // Job 1 finished (run.json written) just before the crash; job 2 was mid-run; job 3 had no run yet.
  const out1 = join(e.dir, 'jobs', '1', 'attempt-1');
  mkdirSync(join(out1, 'work'), { recursive: true });
  writeFileSync(join(out1, 'work', 'out.txt'), 'from the dead runner\n');
  writeFileSync(join(out1, 'run.json'), JSON.stringify({ id: 'r1', status: 'succeeded', exitCode: 0, totalMs: 5 }));
  setAttemptRun(store.db, 'crash', 1, 1, 'r1');
  setAttemptRun(store.db, 'crash', 2, 1, 'r2');
  assert.equal(experimentStatus(store, 'crash').state, 'stopped', 'a dead runner shows as stopped');

  const stats: Stats = { running: 0, max: 0, started: [] };
  const events: string[] = [];
  const s = await runExperiment(store, 'crash', {
    ...fast, executor: fakeExecutor(() => 0, stats),
    onEvent: (ev) => {
      if (ev.type === 'start') events.push(`recovered ${ev.recovered}`);
    },
  });
  assert.equal(s.state, 'succeeded');
  assert.deepEqual(events, ['recovered 3']);
  assert.deepEqual(stats.started.sort(), ['crash-2-2', 'crash-3-2', 'crash-4-1', 'crash-5-1']);
  const r = experimentResults(store, 'crash');
  assert.deepEqual(r[0]!.history.map((h) => h.status), ['succeeded']);
  assert.equal(readFileSync(join(e.dir, 'results', 'out-1.txt'), 'utf8'), 'from the dead runner\n');
  assert.deepEqual(r[1]!.history.map((h) => h.status), ['interrupted', 'succeeded']);
  assert.deepEqual(r[2]!.history.map((h) => h.status), ['interrupted', 'succeeded']);
  assertExactlyOnce(store, 'crash');
  store.close();
});

test('a living runner keeps its experiment: a second runner is refused', async () => {
  const { store, planPath } = setup(PLAN(2));
  await createExperiment(store, { planPath, base: 'fake', name: 'busy' });
  const other = `${process.ppid}:${processStartTime(process.ppid)}`;
  assert.notEqual(other, selfIdentity());
  claimExperiment(store.db, 'busy', other, { restartCancelled: true });
  await assert.rejects(runExperiment(store, 'busy', { ...fast, executor: fakeExecutor(() => 0) }), (e: unknown) => isVmwuError(e) && e.code === 'EXPERIMENT_BUSY');
  store.close();
});

test('two experiments at once share the host\'s slots: never more instances than the host rule allows', async () => {
  const { store, planPath } = setup(PLAN(6));
  await createExperiment(store, { planPath, base: 'fake', name: 'one' });
  await createExperiment(store, { planPath, base: 'fake', name: 'two' });
  const stats: Stats = { running: 0, max: 0, started: [] };
  const ex = fakeExecutor(() => 0, stats, 15);
  const [a, b] = await Promise.all([runExperiment(store, 'one', { ...fast, executor: ex }), runExperiment(store, 'two', { ...fast, executor: ex })]);
  assert.deepEqual([a.state, b.state], ['succeeded', 'succeeded']);
  assert.equal(stats.max, 2, 'the 2-core host rule held across both experiments');
  assertExactlyOnce(store, 'one');
  assertExactlyOnce(store, 'two');
  store.close();
});

test('staging: copies land in results/ atomically; missing files fail unless onerror ignore; symlinks may not leave their dirs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-stage-'));
  const work = join(dir, 'work');
  const results = join(dir, 'results');
  const root = join(dir, 'root');
  mkdirSync(join(work, 'sub'), { recursive: true });
  mkdirSync(root);
  writeFileSync(join(work, 'a.txt'), 'A');
  writeFileSync(join(work, 'sub', 'b.txt'), 'B');
  writeFileSync(join(dir, 'secret'), 'S');
  symlinkSync(join(dir, 'secret'), join(work, 'leak'));
  symlinkSync(join(dir, 'secret'), join(root, 'leak'));
  assert.deepEqual(await stageOut([
    { from: 'a.txt', to: 'x/a.txt', onerror: 'fail' },
    { from: 'sub', to: 'sub', onerror: 'fail' },
    { from: 'nope', to: 'nope', onerror: 'ignore' },
  ], work, results, { maxBytes: 1e9 }), ['x/a.txt', 'sub']);
  assert.equal(readFileSync(join(results, 'x', 'a.txt'), 'utf8'), 'A');
  assert.equal(readFileSync(join(results, 'sub', 'b.txt'), 'utf8'), 'B');
  // On one filesystem a file is hard-linked, not copied; staging again (an adopted attempt) replaces it.
  assert.equal(statSync(join(results, 'x', 'a.txt')).ino, statSync(join(work, 'a.txt')).ino);
  rmSync(join(work, 'a.txt'));
  writeFileSync(join(work, 'a.txt'), 'A2');
  await stageOut([{ from: 'a.txt', to: 'x/a.txt', onerror: 'fail' }], work, results, { maxBytes: 1e9 });
  assert.equal(readFileSync(join(results, 'x', 'a.txt'), 'utf8'), 'A2');
  assert.deepEqual(readdirSync(join(results, 'x')), ['a.txt'], 'no temporary file left');
  await assert.rejects(stageOut([{ from: 'nope', to: 'n', onerror: 'fail' }], work, results, { maxBytes: 1e9 }), (e: unknown) => isVmwuError(e) && e.code === 'STAGE_OUT');
  await assert.rejects(stageOut([{ from: 'leak', to: 'l', onerror: 'fail' }], work, results, { maxBytes: 1e9 }), (e: unknown) => isVmwuError(e) && e.code === 'PATH_ESCAPE');
  assert.throws(() => stageInEntries([{ from: 'leak', to: 'l', onerror: 'fail' }], root), (e: unknown) => isVmwuError(e) && e.code === 'PATH_ESCAPE');
  assert.throws(() => stageInEntries([{ from: 'nope', to: 'n', onerror: 'fail' }], root), (e: unknown) => isVmwuError(e) && e.code === 'STAGE_IN');
  assert.deepEqual(stageInEntries([{ from: 'nope', to: 'n', onerror: 'ignore' }], root), []);
});

test('two jobs staging out to the same file are refused at creation: one result would be lost', async () => {
  const { store, planPath } = setup('parameter x integer range from 1 to 3\ntask main\n  copy node:o root:result.txt\nendtask\n');
  await assert.rejects(createExperiment(store, { planPath, base: 'fake', name: 'dup' }), (e: unknown) => isVmwuError(e) && e.code === 'PLAN_COPY' && /jobs 1 and 2 both copy to root:result.txt/.test(e.message));
  store.close();
});

test('resume of a cancelled experiment re-queues its cancelled jobs; succeeded ones stay done', async () => {
  const { store, planPath } = setup(PLAN(4));
  await createExperiment(store, { planPath, base: 'fake', name: 'reopen', slots: 1 });
  let n = 0;
  await runExperiment(store, 'reopen', {
    ...fast, executor: fakeExecutor(() => 0),
    onEvent: (ev) => {
      if (ev.type === 'job-end' && ++n === 2) store.db.prepare(`UPDATE experiments SET state = 'cancelling' WHERE name = 'reopen'`).run();
    },
  });
  assert.equal(getExperiment(store.db, 'reopen')!.state, 'cancelled');
  const kept = await runExperiment(store, 'reopen', { ...fast, restartCancelled: false, executor: fakeExecutor(() => 0) });
  assert.equal(kept.state, 'cancelled', 'the detached worker never un-cancels');
  const stats: Stats = { running: 0, max: 0, started: [] };
  const s = await runExperiment(store, 'reopen', { ...fast, restartCancelled: true, executor: fakeExecutor(() => 0, stats) });
  assert.equal(s.state, 'succeeded');
  assert.deepEqual(stats.started.sort(), ['reopen-3-1', 'reopen-4-1']);
  assertExactlyOnce(store, 'reopen');
  store.close();
});

test('--unit: jobs boot the unit\'s layer chain on its base, with its resources and parameter defaults (the plan\'s values win)', async () => {
  const { store, planPath } = setup('parameter iters integer default 7\ntask main\n  exec run $iters\nendtask\n');
  const { upsertUnit } = await import('../../../src/unit/records.js');
  upsertUnit(store.db, d('9'), {
    name: 'calc', version: '1.0.0', base: 'fake', baseDigest: d('0'), top: d('8'), chain: [d('8'), d('7')], run: ['/app/run'],
    params: { iters: { default: '100', type: 'int' }, mode: { default: 'fast', type: 'string' } }, outputs: [],
    resources: { memoryMiB: 512, timeoutMs: 60_000 }, network: false, buildKey: 'k', packages: [], createdAt: new Date().toISOString(),
  });
  const e = await createExperiment(store, { planPath, unit: 'calc', name: 'u', cpus: '2' });
  assert.deepEqual(e.target, { kind: 'unit', label: 'calc:1.0.0', base: d('0'), layers: [d('8'), d('7')], paramDefaults: { iters: '100', mode: 'fast' } });
  assert.equal(e.resources.memoryMiB, 512);
  assert.equal(e.resources.timeoutMs, 60_000);
  assert.equal(e.resources.cpus, 2);
  await assert.rejects(createExperiment(store, { planPath, unit: 'nope' }), (err: unknown) => isVmwuError(err) && err.code === 'NO_UNIT' && /calc:1.0.0/.test(err.hint ?? ''));
  await assert.rejects(createExperiment(store, { planPath }), (err: unknown) => isVmwuError(err) && err.code === 'NO_UNIT');
  assert.deepEqual(jobParams(e, experimentResults(store, 'u').map((r) => ({ index: r.job, params: r.params }))[0]!), { iters: '7', mode: 'fast', jobindex: '1' });
  store.close();
});

test('the same experiment cannot be run twice at once from one process either', async () => {
  const { store, planPath } = setup(PLAN(2));
  await createExperiment(store, { planPath, base: 'fake', name: 'twice' });
  const first = runExperiment(store, 'twice', { ...fast, executor: fakeExecutor(() => 0, undefined, 30) });
  await assert.rejects(runExperiment(store, 'twice', { ...fast, executor: fakeExecutor(() => 0) }), (e: unknown) => isVmwuError(e) && e.code === 'EXPERIMENT_BUSY');
  assert.equal((await first).state, 'succeeded');
  assertExactlyOnce(store, 'twice');
  store.close();
});

test('a remote executor brings its own capacity, takes no host slot, and a job lost with its host is requeued without counting a failure', async () => {
  const { store, planPath } = setup(PLAN(4));
  await createExperiment(store, { planPath, base: 'fake', name: 'remote', retries: 0 });
  const inner = fakeExecutor(() => 0);
  const leasesSeen: number[] = [];
  let closed = false;
  let lostOnce = false;
  const remote: Executor = {
    name: 'remote',
    capacity: async () => ({ slots: 3, explain: 'three remote slots' }),
    async runAttempt(s, ctx) {
      leasesSeen.push(listLeases(s.db).length);
      ctx.onPlaced?.(ctx.job.index % 2 ? 'odd-host' : 'even-host');
      if (ctx.job.index === 2 && !lostOnce) {
        lostOnce = true;
        return { runId: null, status: 'interrupted', exitCode: null, phases: null, totalMs: null, error: { code: 'HOST_LOST', message: 'host even-host was lost' } };
      }
      return inner.runAttempt(s, ctx);
    },
    close: async () => {
      closed = true;
    },
  };
  const r = await runExperiment(store, 'remote', { ...fast, executor: remote, slots: undefined });
  assert.equal(r.state, 'succeeded', 'retries 0, yet the lost attempt did not fail the job');
  assert.deepEqual([...new Set(leasesSeen)], [0], 'no local slot lease while remote attempts run');
  assert.equal(closed, true);
  assert.equal(experimentStatus(store, 'remote').slotsExplain, 'three remote slots');
  const h2 = listAttempts(store.db, 'remote', 2);
  assert.deepEqual(h2.map((a) => [a.status, a.host]), [['interrupted', 'even-host'], ['succeeded', 'even-host']]);
  assert.match(h2[0]!.error!, /HOST_LOST: host even-host was lost/);
  assertExactlyOnce(store, 'remote');
  store.close();
});
