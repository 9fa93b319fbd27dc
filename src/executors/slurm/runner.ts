import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isVmwuError, VmwuError } from '../../errors.js';
import { packageRoot } from '../../paths.js';
import { identityAlive, selfIdentity } from '../../run/process-identity.js';
import type { Store } from '../../store/store.js';
import { localExecutor, type AttemptResult } from '../../sweep/executor.js';
import { ensureExperimentDir, resultsDir } from '../../sweep/experiment.js';
import {
  finishAttempt, getExperiment, getJob, jobCounts, releaseExperiment, requireExperiment, setAttemptRun, type AttemptOutcome, type Experiment, type JobRecord,
} from '../../sweep/records.js';
import { outcomeOf, type ExperimentSummary, type RunExperimentOptions, type SweepEvent } from '../../sweep/runner.js';
import { compileJob } from '../../sweep/script.js';
import { stageOut } from '../../sweep/staging.js';
import { addSubmission, deactivateSubmission, getExecutor, listSubmissions, nextRound, type Submission } from '../records.js';
import { arrayActive, maxArraySize, sbatch, scancel } from './commands.js';
import { batchScript, chunkJobs, slurmResources, type SlurmOptions } from './script.js';

const now = () => new Date().toISOString();

export function slurmDir(e: Experiment): string {
  return join(e.dir, 'slurm');
}

/** Takes job `index` for one attempt if it is pending: running, owned by `owner`, with a new attempt row. */
function claimJob(store: Store, e: Experiment, index: number, owner: string): { job: JobRecord; attempt: number; outDir: string } | undefined {
  const db = store.db;
  const tx = db.transaction(() => {
    const job = getJob(db, e.name, index);
    if (!job || job.state !== 'pending') return undefined;
    const attempt = job.attempts + 1;
    const outDir = join(e.dir, 'jobs', String(index), `attempt-${attempt}`);
    const t = now();
    db.prepare(`UPDATE experiment_jobs SET state = 'running', owner = ?, attempts = ?, not_before = 0, started_at = COALESCE(started_at, ?)
      WHERE experiment = ? AND idx = ?`).run(owner, attempt, t, e.name, index);
    db.prepare(`INSERT INTO attempts (experiment, job, attempt, owner, status, out_dir, started_at) VALUES (?, ?, ?, ?, 'running', ?, ?)`)
      .run(e.name, index, attempt, owner, outDir, t);
    return { job: { ...job, state: 'running' as const, owner, attempts: attempt }, attempt, outDir };
  });
  return tx.immediate();
}

async function settle(store: Store, e: Experiment, job: JobRecord, attempt: number, outDir: string, owner: string, outcome: AttemptOutcome): Promise<ReturnType<typeof finishAttempt>> {
  let o = outcome;
  if (o.status === 'succeeded') {
    try {
      o = { ...o, outputs: await stageOut(compileJob(job.commands, `job ${job.index}`).stageOut, join(outDir, 'work'), resultsDir(e)) };
    } catch (err) {
      o = { ...o, status: 'error', error: `${isVmwuError(err) ? err.code : 'STAGE_OUT'}: ${(err as Error).message}` };
    }
  }
  return finishAttempt(store.db, { experiment: e.name, job: job.index, attempt, owner, outcome: o, maxRetries: e.maxRetries, nowMs: Date.now() });
}

/**
 * `vmwu sweep-task EXP --index N`: what one Slurm array task runs on its node.
 * Runs one attempt of job N through the local executor (runJob + the job script)
 * and records it in the store, as the local scheduler would. A job that is not
 * pending (already done, or re-queued twice) is left alone. Returns the exit code.
 */
export async function sweepTask(store: Store, name: string, index: number, opts: { slurmTask?: string; signal?: AbortSignal } = {}): Promise<number> {
  const e = requireExperiment(store.db, name);
  const me = selfIdentity();
  const pending = getJob(store.db, name, index);
  if (!pending) throw new VmwuError('NO_JOB', `experiment ${name} has no job ${index}`);
  if (pending.notBefore > Date.now()) await new Promise((r) => setTimeout(r, pending.notBefore - Date.now()));
  const c = claimJob(store, e, index, me);
  if (!c) {
    process.stderr.write(`vmwu: job ${index} of ${name} is ${getJob(store.db, name, index)?.state}; nothing to do\n`);
    return 0;
  }
  ensureExperimentDir(e);
  process.stderr.write(`vmwu: job ${index} of ${name}, attempt ${c.attempt}${opts.slurmTask ? `, Slurm task ${opts.slurmTask}` : ''}\n`);
  const ac = new AbortController();
  opts.signal?.addEventListener('abort', () => ac.abort());
  let outcome: AttemptOutcome;
  try {
    const r: AttemptResult = await localExecutor.runAttempt(store, {
      experiment: e, job: c.job, attempt: c.attempt, outDir: c.outDir, signal: ac.signal,
      onRunId: (id) => setAttemptRun(store.db, name, index, c.attempt, id),
    });
    outcome = outcomeOf(r, c.outDir);
  } catch (err) {
    outcome = { status: 'error', runId: null, exitCode: null, error: `${isVmwuError(err) ? err.code : 'INTERNAL'}: ${(err as Error).message}`, phases: null, totalMs: null };
  }
  if (ac.signal.aborted && outcome.status !== 'succeeded') {
    const st = getExperiment(store.db, name)?.state;
    const cancel = st === 'cancelling' || st === 'cancelled';
    outcome = { ...outcome, status: cancel ? 'cancelled' : 'interrupted', error: cancel ? 'cancelled (scancel)' : 'interrupted (Slurm stopped the task)' };
  }
  const next = await settle(store, e, c.job, c.attempt, c.outDir, me, outcome);
  process.stderr.write(`vmwu: job ${index} attempt ${c.attempt} ${outcome.status}${outcome.error ? ` (${outcome.error})` : ''}; job is ${next?.state ?? 'settled elsewhere'}\n`);
  return outcome.status === 'succeeded' ? 0 : 1;
}

/** The last non-empty line of a task's Slurm output file: the batch script's or slurmstepd's reason. */
function taskReason(e: Experiment, s: Submission, job: number): string {
  const chunkOffset = Number(/OFFSET=(\d+)/.exec(safeRead(s.scriptPath))?.[1] ?? 0);
  const file = join(slurmDir(e), `${s.slurmJobId}_${job - chunkOffset}.out`);
  const last = safeRead(file).trimEnd().split('\n').filter((l) => l.trim()).pop();
  return `Slurm task ${s.slurmJobId}_${job - chunkOffset} ended without a result${last ? `: ${last.slice(0, 300)}` : ''} (${file})`;
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/**
 * An array that left the queue: its jobs that are still running (the task died:
 * time limit, node failure) or never started (the node check failed) get a
 * failed attempt with the task's reason, which counts against their retries.
 */
async function settleSubmission(store: Store, e: Experiment, s: Submission, me: string): Promise<void> {
  const db = store.db;
  for (const [k, idx] of s.jobs.entries()) {
    const job = getJob(db, e.name, idx);
    if (!job) continue;
    // Attempt numbers, not clocks: the nodes' clocks need not agree with this host's.
    const started = db.prepare(`SELECT attempt, status, out_dir, owner FROM attempts WHERE experiment = ? AND job = ? AND attempt > ? ORDER BY attempt DESC LIMIT 1`)
      .get(e.name, idx, s.attemptsAtSubmit[k] ?? 0) as { attempt: number; status: string; out_dir: string; owner: string } | undefined;
    const lost = (error: string): AttemptOutcome => ({ status: 'error', runId: null, exitCode: null, error, phases: null, totalMs: null });
    if (job.state === 'running' && started?.status === 'running') {
      await settle(store, e, job, started.attempt, started.out_dir, job.owner ?? started.owner, lost(taskReason(e, s, idx)));
    } else if (job.state === 'pending' && !started) {
      const c = claimJob(store, e, idx, me);
      if (c) await settle(store, e, c.job, c.attempt, c.outDir, me, lost(taskReason(e, s, idx)));
    }
  }
  deactivateSubmission(db, s.id);
}

export interface SlurmRunOptions extends Pick<RunExperimentOptions, 'signal' | 'onEvent' | 'restartCancelled' | 'pollMs'> {
  /** Where the nodes find node and vmwu (default: this process's). */
  node?: string;
  vmwuJs?: string;
}

/** Submits the ready pending jobs as sbatch arrays (chunked by MaxArraySize); returns how many jobs went out. */
async function submitPending(store: Store, e: Experiment, so: SlurmOptions, o: SlurmRunOptions): Promise<number> {
  const ready = (store.db.prepare(`SELECT idx FROM experiment_jobs WHERE experiment = ? AND state = 'pending' AND not_before <= ? ORDER BY idx`)
    .all(e.name, Date.now()) as { idx: number }[]).map((r) => r.idx);
  if (!ready.length) return 0;
  const dir = slurmDir(e);
  mkdirSync(dir, { recursive: true });
  const res = slurmResources(e.resources);
  for (const chunk of chunkJobs(ready, await maxArraySize())) {
    const round = nextRound(store.db, e.name);
    const scriptPath = join(dir, `round-${round}.sbatch`);
    writeFileSync(scriptPath, batchScript({
      experiment: e.name, round, chunk, resources: res, options: so, vmwuHome: store.paths.root,
      node: o.node ?? process.execPath, vmwuJs: o.vmwuJs ?? join(packageRoot, 'bin', 'vmwu.js'), logDir: dir,
    }));
    const submittedAt = now();
    const attemptsAtSubmit = chunk.jobs.map((j) => getJob(store.db, e.name, j)?.attempts ?? 0);
    const id = await sbatch(scriptPath, e.dir);
    addSubmission(store.db, { experiment: e.name, round, slurmJobId: id, jobs: chunk.jobs, attemptsAtSubmit, scriptPath, submittedAt });
    o.onEvent?.({ type: 'info', message: `submitted Slurm array ${id} (round ${round}, ${chunk.jobs.length} jobs): ${scriptPath}` });
  }
  return ready.length;
}

/** Makes this process the experiment's submitter; refused while another living process is. */
function claimSubmitter(store: Store, name: string, me: string, restartCancelled: boolean): Experiment {
  const db = store.db;
  const tx = db.transaction(() => {
    const e = requireExperiment(db, name);
    if (e.owner && e.owner !== me && identityAlive(e.owner)) {
      throw new VmwuError('EXPERIMENT_BUSY', `experiment ${name} is being run by process ${e.owner.split(':')[0]}`, `watch it with \`vmwu status ${name}\``);
    }
    if (e.state === 'succeeded' || e.state === 'failed') return e;
    if (e.state === 'cancelled') {
      if (!restartCancelled) return e;
      db.prepare(`UPDATE experiment_jobs SET state = 'pending', owner = NULL, not_before = 0, finished_at = NULL WHERE experiment = ? AND state = 'cancelled'`).run(name);
    }
    db.prepare(`UPDATE experiments SET state = 'running', owner = ?, finished_at = NULL, updated_at = ? WHERE name = ?`).run(me, now(), name);
    return requireExperiment(db, name);
  });
  return tx.immediate();
}

/** scancel every array of the experiment still in the queue, and wait until they have left it. */
export async function cancelArrays(store: Store, name: string, pollMs = 300): Promise<string[]> {
  const subs = listSubmissions(store.db, name, true);
  for (const s of subs) await scancel(s.slurmJobId);
  for (const s of subs) {
    while (await arrayActive(s.slurmJobId)) await new Promise((r) => setTimeout(r, pollMs));
  }
  return subs.map((s) => s.slurmJobId);
}

/**
 * Runs (or re-attaches to) an experiment on Slurm. Ready pending jobs go out as
 * one `sbatch --array` per round (chunked by MaxArraySize); each array task runs
 * `vmwu sweep-task` and records its attempt in the shared store, which is where
 * this submitter reads progress from, with squeue telling it when an array has
 * left the queue. Failed jobs with retries left go out in the next round, after
 * their backoff. Interrupting the submitter leaves the arrays running: `vmwu
 * resume` re-attaches to them (their Slurm job ids are in the store) instead of
 * submitting again; `vmwu cancel` scancels them.
 */
export async function runSlurmExperiment(store: Store, name: string, o: SlurmRunOptions = {}): Promise<ExperimentSummary> {
  const db = store.db;
  const me = selfIdentity();
  const emit = (ev: SweepEvent) => o.onEvent?.(ev);
  const e = claimSubmitter(store, name, me, o.restartCancelled ?? true);
  const summary = (): ExperimentSummary => ({ name, state: getExperiment(db, name)!.state, counts: jobCounts(db, name), dir: e.dir, resultsDir: resultsDir(e) });
  if (e.owner !== me) return summary();
  const so = getExecutor(db, name).options as SlurmOptions;
  let how: 'done' | 'cancel' | 'interrupt' = 'interrupt';
  try {
    ensureExperimentDir(e);
    const attached = listSubmissions(db, name, true);
    const c0 = jobCounts(db, name);
    emit({
      type: 'start', experiment: name, total: e.jobCount, done: c0.succeeded + c0.failed + c0.cancelled, slots: so.maxParallel ?? 0, hostSlots: 0,
      explain: `Slurm arrays${so.maxParallel ? ` of at most ${so.maxParallel} tasks at once` : ''}${so.partition ? ` on partition ${so.partition}` : ''}${attached.length ? `; re-attached to ${attached.map((s) => s.slurmJobId).join(', ')}` : ''}`,
      recovered: 0,
    });
    const seen = new Map<string, string>();
    for (const a of db.prepare('SELECT job, attempt, status FROM attempts WHERE experiment = ?').all(name) as { job: number; attempt: number; status: string }[]) seen.set(`${a.job}/${a.attempt}`, a.status);
    const report = () => {
      for (const a of db.prepare('SELECT job, attempt, status, exit_code, error, total_ms, run_id FROM attempts WHERE experiment = ?').all(name) as
        { job: number; attempt: number; status: string; exit_code: number | null; error: string | null; total_ms: number | null; run_id: string | null }[]) {
        const k = `${a.job}/${a.attempt}`;
        const was = seen.get(k);
        if (was === a.status) continue;
        seen.set(k, a.status);
        if (a.status === 'running') {
          emit({ type: 'job-start', job: a.job, attempt: a.attempt });
        } else {
          const j = getJob(db, name, a.job);
          emit({
            type: 'job-end', job: a.job, attempt: a.attempt, status: a.status as AttemptOutcome['status'], exitCode: a.exit_code, error: a.error,
            next: j?.state ?? 'pending', retryInMs: j && j.notBefore ? Math.max(0, j.notBefore - Date.now()) : null, totalMs: a.total_ms, runId: a.run_id,
          });
        }
      }
    };
    for (;;) {
      report();
      if (o.signal?.aborted) break;
      if (getExperiment(db, name)?.state === 'cancelling') {
        await cancelArrays(store, name);
        for (const s of listSubmissions(db, name, true)) deactivateSubmission(db, s.id);
        db.prepare(`UPDATE attempts SET status = 'cancelled', error = COALESCE(error, 'cancelled'), finished_at = ? WHERE experiment = ? AND status = 'running'`).run(now(), name);
        report();
        how = 'cancel';
        break;
      }
      let active = 0;
      for (const s of listSubmissions(db, name, true)) {
        if (await arrayActive(s.slurmJobId, (err) => emit({ type: 'warning', message: `${err.message} (asking again)` }))) active++;
        else await settleSubmission(store, e, s, me);
      }
      if (!active) {
        const c = jobCounts(db, name);
        if (c.running > 0) {
          // Running without an array in the queue: their tasks are gone (lost outside any submission we know).
          for (const j of db.prepare(`SELECT idx FROM experiment_jobs WHERE experiment = ? AND state = 'running'`).all(name) as { idx: number }[]) {
            const a = db.prepare(`SELECT attempt, out_dir, owner FROM attempts WHERE experiment = ? AND job = ? AND status = 'running' ORDER BY attempt DESC LIMIT 1`).get(name, j.idx) as { attempt: number; out_dir: string; owner: string } | undefined;
            const job = getJob(db, name, j.idx);
            if (a && job && !identityAlive(a.owner)) {
              await settle(store, e, job, a.attempt, a.out_dir, job.owner ?? a.owner, { status: 'interrupted', runId: null, exitCode: null, error: 'lost with its Slurm task', phases: null, totalMs: null });
            }
          }
        } else if (c.pending === 0) {
          how = 'done';
          break;
        }
        await submitPending(store, e, so, o);
      }
      await new Promise((r) => setTimeout(r, o.pollMs ?? 1000));
    }
  } catch (err) {
    releaseExperiment(db, name, me, 'interrupt');
    throw err;
  }
  const after = releaseExperiment(db, name, me, how);
  emit({ type: 'end', state: after.state });
  return summary();
}
