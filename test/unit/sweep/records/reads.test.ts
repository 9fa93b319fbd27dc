import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../../../src/errors.js';
import { registerBase } from '../../../../src/store/bases.js';
import type { Digest } from '../../../../src/store/blobs.js';
import type { Db } from '../../../../src/store/db.js';
import { openStore } from '../../../../src/store/store.js';
import { createExperiment } from '../../../../src/sweep/experiment.js';
import {
  claimExperiment, claimNext, finishAttempt, recordStartedAttempt, releaseExperiment, reopenCancelled, requestCancel, resetTotals,
  setAttemptHost, setAttemptRun, setAttemptUsage,
} from '../../../../src/sweep/records/lifecycle.js';
import { allExperimentTotals, experimentTotals, recountTotals } from '../../../../src/sweep/records/reads.js';
import { retryJob } from '../../../../src/sweep/retry-job.js';
import type { AttemptStatus, JobState } from '../../../../src/sweep/states.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

/** A small seeded generator (mulberry32): the same steps on every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The latest attempt's figures on every job row equal that attempt's own (none when it has no row). */
function latestMismatches(db: Db, name: string): number[] {
  return (db.prepare(`SELECT j.idx FROM experiment_jobs j
      LEFT JOIN attempts a ON a.experiment = j.experiment AND a.job = j.idx AND a.attempt = j.attempts
    WHERE j.experiment = ? AND NOT (j.last_run_id IS a.run_id AND j.last_host IS a.host AND j.last_total_ms IS a.total_ms
      AND j.last_cpu_ms IS a.cpu_ms AND j.last_max_rss_kib IS a.max_rss_kib)`).all(name) as { idx: number }[]).map((r) => r.idx);
}

/** job_params holds exactly each job's parameters. */
function paramsMismatch(db: Db, name: string): number {
  const expanded = `SELECT j.experiment, p.key AS name, CAST(p.value AS TEXT) AS value, j.idx FROM experiment_jobs j, json_each(j.params) p WHERE j.experiment = ?`;
  const kept = 'SELECT experiment, name, value, idx FROM job_params WHERE experiment = ?';
  return (db.prepare(`SELECT (SELECT COUNT(*) FROM (${expanded} EXCEPT ${kept})) + (SELECT COUNT(*) FROM (${kept} EXCEPT ${expanded})) AS n`)
    .get(name, name, name, name) as { n: number }).n;
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-totals-'));
  const store = openStore(join(dir, 'store'));
  registerBase(store.db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
  writeFileSync(join(dir, 'p.pln'), 'parameter a integer range from 1 to 6\nparameter b text select anyof "x" "y y" "z"\ntask main\n  exec work $a $b\nendtask\n');
  return { store, plan: join(dir, 'p.pln') };
}

test('the totals kept with the rows equal a recount after 3,000 random changes through every writer', async () => {
  const { store, plan } = setup();
  const db = store.db;
  const names = ['e1', 'e2'];
  for (const name of names) await createExperiment(store, { planPath: plan, base: 'fake', name, retries: 1 });
  const rnd = random(25);
  const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(rnd() * xs.length)];
  const ME = 'me';
  const later = Date.now() + 1e9;
  const statuses: AttemptStatus[] = ['succeeded', 'failed', 'timeout', 'error', 'interrupted', 'cancelled'];
  const states: JobState[] = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];
  const running = (name: string) => db.prepare(`SELECT a.job, a.attempt, j.owner FROM attempts a JOIN experiment_jobs j ON j.experiment = a.experiment AND j.idx = a.job
    WHERE a.experiment = ? AND a.status = 'running'`).all(name) as { job: number; attempt: number; owner: string | null }[];
  const jobsIn = (name: string, s: JobState[]) => (db.prepare(`SELECT idx, attempts FROM experiment_jobs WHERE experiment = ? AND state IN (${s.map(() => '?').join(', ')})`)
    .all(name, ...s) as { idx: number; attempts: number }[]);
  const seen = new Set<string>();

  for (let step = 0; step < 3000; step++) {
    const name = pick(names)!;
    const r = rnd();
    try {
      if (r < 0.3) {
        const c = claimNext(db, { experiment: name, owner: ME, nowMs: later, outDir: (j, a) => `/out/${j}/${a}`, lease: false, perExperiment: 99, hostSlots: 99, memoryMiB: 1, cpus: 1 });
        seen.add(`claim:${c.kind}`);
      } else if (r < 0.45) {
        const a = pick(running(name));
        if (a) {
          const what = rnd();
          if (what < 0.4) setAttemptRun(db, name, a.job, a.attempt, `run-${step}`);
          else if (what < 0.7) setAttemptHost(db, name, a.job, a.attempt, pick(['h1', 'h2', 'h3'])!);
          else setAttemptUsage(db, name, a.job, a.attempt, { cpuMs: step, maxRssKiB: step * 3, source: 'sacct' });
          seen.add('attempt-figures');
        }
      } else if (r < 0.75) {
        const a = pick(running(name));
        if (a) {
          const status = pick(statuses)! as Exclude<AttemptStatus, 'running'>;
          const totalMs = rnd() < 0.8 ? Math.floor(rnd() * 10_000) : null;
          finishAttempt(db, {
            experiment: name, job: a.job, attempt: a.attempt, owner: rnd() < 0.95 ? (a.owner ?? ME) : 'someone-else', maxRetries: Math.floor(rnd() * 3), nowMs: Date.now(),
            outcome: { status, runId: rnd() < 0.5 ? `run-f${step}` : null, exitCode: status === 'succeeded' ? 0 : 1, error: status === 'succeeded' ? null : status, phases: null, totalMs,
              usage: rnd() < 0.5 ? { cpuMs: step, maxRssKiB: step, source: 'proc' } : null, outputs: status === 'succeeded' ? [`o-${a.job}`] : undefined },
          });
          seen.add(`finish:${status}`);
        }
      } else if (r < 0.82) {
        const j = pick(jobsIn(name, ['pending']));
        if (j) {
          recordStartedAttempt(db, { experiment: name, job: j.idx, attempt: j.attempts + 1, owner: 'submitter', runner: 'node:1', host: rnd() < 0.5 ? 'n1' : null,
            runId: rnd() < 0.5 ? `run-b${step}` : null, batchId: `42_${j.idx}`, outDir: `/out/${j.idx}`, at: new Date(Date.now() - step * 1000).toISOString() });
          seen.add('batch-start');
        }
      } else if (r < 0.87) {
        const j = pick(jobsIn(name, ['failed', 'cancelled']));
        if (j) {
          retryJob(db, name, j.idx, () => false);
          seen.add('retry');
        }
      } else if (r < 0.89) {
        requestCancel(db, name, 'other', () => false);
        seen.add('cancel');
      } else if (r < 0.92) {
        reopenCancelled(db, name, () => false);
        claimExperiment(db, name, ME, { restartCancelled: true, isAlive: () => true });
        seen.add('claim-experiment');
      } else if (r < 0.94) {
        releaseExperiment(db, name, ME, pick(['done', 'cancel', 'interrupt'] as const)!);
        seen.add('release');
      } else if (r < 0.98) {
        // Another writer of the store, straight in SQL: the triggers see it too.
        const j = Math.ceil(rnd() * 18);
        db.prepare('UPDATE experiment_jobs SET state = ?, failures = ? WHERE experiment = ? AND idx = ?').run(pick(states)!, Math.floor(rnd() * 3), name, j);
        seen.add('raw-update');
      } else {
        const a = pick(db.prepare('SELECT job, attempt FROM attempts WHERE experiment = ?').all(name) as { job: number; attempt: number }[]);
        if (a) db.prepare('DELETE FROM attempts WHERE experiment = ? AND job = ? AND attempt = ?').run(name, a.job, a.attempt);
        seen.add('raw-delete');
      }
    } catch (e) {
      // Refusals (a job not in the state a retry needs, an experiment being cancelled) change nothing.
      if (!isVmwuError(e)) throw e;
    }
    for (const n of names) {
      assert.deepEqual(experimentTotals(db, n), recountTotals(db, n), `step ${step}: ${n}`);
      assert.deepEqual(latestMismatches(db, n), [], `step ${step}: the latest attempt's figures of ${n}`);
    }
  }
  for (const what of ['claim:claimed', 'attempt-figures', 'finish:succeeded', 'finish:failed', 'finish:interrupted', 'batch-start', 'retry', 'cancel', 'claim-experiment', 'release', 'raw-update', 'raw-delete']) {
    assert.ok(seen.has(what), `the walk did ${what}`);
  }
  const e2 = experimentTotals(db, 'e2');
  assert.ok(e2.attempts > 0 && e2.timed > 0 && e2.firstStartedAt !== null, 'the walk got somewhere');
  assert.equal(paramsMismatch(db, 'e1'), 0);
  assert.equal((db.prepare(`SELECT COUNT(*) AS n FROM job_params WHERE experiment = 'e1' AND name = 'b' AND value = 'y y'`).get() as { n: number }).n, 6);

  // Keys never move, so the totals cannot be left behind.
  assert.throws(() => db.prepare(`UPDATE experiment_jobs SET idx = 99 WHERE experiment = 'e1' AND idx = 1`).run(), /keeps its experiment and index/);
  assert.throws(() => db.prepare(`UPDATE attempts SET job = 99 WHERE experiment = 'e1'`).run(), /keeps its experiment, job and number/);

  // Rows written around the library (copied in SQL) get their totals from a recount.
  db.prepare(`UPDATE experiment_summaries SET pending = 999, timed_ms = -1, first_started_at = NULL WHERE experiment = 'e2'`).run();
  assert.notDeepEqual(experimentTotals(db, 'e2'), recountTotals(db, 'e2'));
  resetTotals(db, 'e2');
  assert.deepEqual(experimentTotals(db, 'e2'), recountTotals(db, 'e2'));

  // An experiment removed takes its totals and parameters with it; the other keeps its own.
  db.prepare(`DELETE FROM experiments WHERE name = 'e1'`).run();
  assert.deepEqual([...allExperimentTotals(db).keys()], ['e2']);
  assert.equal((db.prepare(`SELECT COUNT(*) AS n FROM job_params WHERE experiment = 'e1'`).get() as { n: number }).n, 0);
  assert.deepEqual(experimentTotals(db, 'e2'), recountTotals(db, 'e2'));
  assert.equal(paramsMismatch(db, 'e2'), 0);
  store.close();
});
