import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Phases } from '../../../src/run/phase-clock.js';
import { queryJobs, summariseTimings, timings, type JobQuery } from '../../../src/server/queries.js';
import { registerBase } from '../../../src/store/bases.js';
import type { Digest } from '../../../src/store/blobs.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { createExperiment } from '../../../src/sweep/experiment.js';
import { claimNext, finishAttempt, setAttemptHost, setAttemptRun } from '../../../src/sweep/records/lifecycle.js';
import { listAttempts, listJobs } from '../../../src/sweep/records/reads.js';
import type { JobState } from '../../../src/sweep/states.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const A = 30;
const B = 20;

/** 600 jobs: 300 claimed, 240 of them settled, with ties and gaps in every sortable column. */
async function experiment(): Promise<Store> {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-queries-'));
  const store = openStore(join(dir, 'store'));
  registerBase(store.db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
  writeFileSync(join(dir, 'p.pln'), `parameter a integer range from 1 to ${A}\nparameter b integer range from 1 to ${B}\ntask main\n  exec work $a $b\nendtask\n`);
  await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'x', retries: 1 });
  const db = store.db;
  const claimed: { job: number; attempt: number }[] = [];
  for (let k = 0; k < 300; k++) {
    const c = claimNext(db, { experiment: 'x', owner: 'me', nowMs: Date.now() + 1e9, outDir: (j, a) => `/o/${j}/${a}`, lease: false, perExperiment: 999, hostSlots: 999, memoryMiB: 1, cpus: 1 });
    if (c.kind !== 'claimed') throw new Error(c.kind);
    if (k % 5 !== 0) setAttemptHost(db, 'x', c.job.index, c.attempt, `h${c.job.index % 4}`);
    if (k % 3 !== 0) setAttemptRun(db, 'x', c.job.index, c.attempt, `r${c.job.index}`);
    claimed.push({ job: c.job.index, attempt: c.attempt });
  }
  for (const { job, attempt } of claimed.slice(0, 240)) {
    const ok = job % 7 !== 0;
    const exec = (job * 37) % 500;
    const phases: Phases = { prepare: 1, boot: 100, restore: 0, stageIn: 2, exec, stageOut: 3, shutdown: 4, collect: 1 };
    finishAttempt(db, {
      experiment: 'x', job, attempt, owner: 'me', maxRetries: job % 2, nowMs: Date.now(),
      outcome: { status: ok ? 'succeeded' : 'failed', runId: null, exitCode: ok ? 0 : job % 3, error: ok ? null : 'exit', phases, totalMs: job % 11 === 0 ? null : 111 + exec,
        usage: job % 13 === 0 ? null : { cpuMs: exec % 50, maxRssKiB: 1000 + (job % 9), source: 'proc' } },
    });
  }
  return store;
}

type Key = 'index' | 'state' | 'exit' | 'attempts' | 'duration' | 'started' | 'host' | 'cpu' | 'rss';

/** Every job as the page shows it, read the slow way: the job and its latest attempt. */
function reference(store: Store) {
  const latest = new Map(listAttempts(store.db, 'x').map((a) => [`${a.job}/${a.attempt}`, a]));
  return listJobs(store.db, 'x').map((j) => {
    const a = latest.get(`${j.index}/${j.attempts}`);
    const key: Record<Key, string | number | null> = {
      index: j.index, state: j.state, exit: j.exitCode, attempts: j.attempts, duration: a?.totalMs ?? null, started: j.startedAt,
      host: a?.host ?? null, cpu: a?.usage?.cpuMs ?? null, rss: a?.usage?.maxRssKiB ?? null,
    };
    return { index: j.index, state: j.state, params: j.params, key, runId: a?.runId ?? null };
  });
}

test('job pages: every job exactly once, in the order asked, for every sort, direction and filter', async () => {
  const store = await experiment();
  const all = reference(store);
  assert.ok(new Set(all.map((j) => j.state)).size >= 4, 'the jobs are in several states');
  const filters: { name: string; q: Pick<JobQuery, 'state' | 'params'>; keep: (j: (typeof all)[number]) => boolean }[] = [
    { name: 'none', q: {}, keep: () => true },
    { name: 'succeeded', q: { state: ['succeeded'] }, keep: (j) => j.state === 'succeeded' },
    { name: 'pending or failed', q: { state: ['pending', 'failed', 'failed'] }, keep: (j) => j.state === 'pending' || j.state === 'failed' },
    { name: 'a=7', q: { params: { a: '7' } }, keep: (j) => j.params.a === '7' },
    { name: 'a=7 b=3', q: { params: { a: '7', b: '3' } }, keep: (j) => j.params.a === '7' && j.params.b === '3' },
    { name: 'running, b=4', q: { state: ['running'], params: { b: '4' } }, keep: (j) => j.state === 'running' && j.params.b === '4' },
    { name: 'a bad parameter name is ignored', q: { params: { "a' OR 1=1--": '1' } }, keep: () => true },
  ];
  const keys: Key[] = ['index', 'state', 'exit', 'attempts', 'duration', 'started', 'host', 'cpu', 'rss'];
  for (const f of filters) {
    const want = all.filter(f.keep);
    for (const sort of keys) {
      for (const dir of ['asc', 'desc'] as const) {
        const sign = dir === 'asc' ? 1 : -1;
        // Jobs without a value last in either direction; ties by index in the same direction.
        const expected = [...want].sort((x, y) => {
          const a = x.key[sort];
          const b = y.key[sort];
          if (a === null || b === null) return a === b ? sign * (x.index - y.index) : a === null ? 1 : -1;
          return a < b ? -sign : a > b ? sign : sign * (x.index - y.index);
        }).map((j) => j.index);
        const got: number[] = [];
        for (let offset = 0; ; offset += 37) {
          const page = queryJobs(store.db, 'x', { ...f.q, sort, dir, offset, limit: 37 });
          assert.equal(page.total, want.length, `${f.name}, ${sort} ${dir}: total`);
          got.push(...page.jobs.map((j) => j.index));
          if (offset + 37 >= page.total) break;
        }
        assert.equal(new Set(got).size, got.length, `${f.name}, ${sort} ${dir}: no job twice`);
        assert.deepEqual(got, expected, `${f.name}, ${sort} ${dir}`);
      }
    }
  }
  // A page shows its jobs' latest attempts.
  const byIndex = new Map(all.map((j) => [j.index, j]));
  for (const j of queryJobs(store.db, 'x', { sort: 'duration', dir: 'desc', limit: 500 }).jobs) {
    const r = byIndex.get(j.index)!;
    assert.deepEqual([j.totalMs, j.host, j.cpuMs, j.maxRssKiB, j.runId], [r.key.duration, r.key.host, r.key.cpu, r.key.rss, r.runId]);
  }
  assert.deepEqual(queryJobs(store.db, 'x', { state: ['nope' as JobState], limit: 1 }).total, 600, 'an unknown state is no filter');
  store.close();
});

test('timings: all jobs up to the sample size, a sample spread over the parameter grid above it, standing for the rest', async () => {
  const store = await experiment();
  const exact = timings(store.db, 'x', 300, 20, 600);
  assert.equal(exact.sampled, 1);
  const finished = (store.db.prepare(`SELECT COUNT(*) AS n FROM attempts a JOIN experiment_jobs j ON j.experiment = a.experiment AND j.idx = a.job AND j.attempts = a.attempt
    WHERE a.experiment = 'x' AND a.status IN ('succeeded', 'failed', 'timeout') AND a.total_ms IS NOT NULL AND a.phases IS NOT NULL`).get() as { n: number }).n;
  assert.equal(exact.count, finished);
  assert.equal(exact.histogram.reduce((n, b) => n + b.count, 0), finished);

  const sampled = timings(store.db, 'x', 300, 20, 100);
  assert.equal(sampled.sampled, 6, '600 jobs, a sample of 100: every 6th');
  assert.equal(sampled.count % 6, 0);
  assert.equal(sampled.histogram.reduce((n, b) => n + b.count, 0), sampled.count, 'the histogram adds up to the estimate');
  assert.ok(Math.abs(sampled.count - finished) <= finished * 0.25, `estimate ${sampled.count} near ${finished}`);
  assert.deepEqual(sampled.jobs, exact.jobs, 'the per-job chart is the first finished jobs either way');
  assert.equal(sampled.jobs.length, Math.min(300, finished));

  // The statistics themselves: weights scale counts, not durations.
  const jobs = [10, 20, 30, 40].map((t, i) => ({ index: i + 1, totalMs: t, phases: { template: 0, boot: t, restore: 0, stageIn: 0, exec: 0, stageOut: 0, shutdown: 0 } }));
  const one = summariseTimings(jobs, 1, 20);
  const three = summariseTimings(jobs, 3, 20);
  assert.deepEqual(three.phaseStats, one.phaseStats);
  assert.equal(three.count, 12);
  assert.deepEqual(three.histogram.map((b) => b.count), [3, 3, 0, 3, 3], 'bins for the 12 jobs the sample stands for, 3 to each sampled one');
  assert.deepEqual(one.histogram.map((b) => b.count), [1, 1, 2]);
  store.close();
});
