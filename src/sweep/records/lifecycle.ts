import { VmwuError } from '../../errors.js';
import type { ExecutorChoice } from '../../request/executor.js';
import { setExecutor } from '../executor-choice.js';
import type { Phases } from '../../run/phase-clock.js';
import type { StartRecord } from '../../run/fast-start/clone.js';
import type { VmOutcome } from '../../run/job-request.js';
import { describeOwner, mayBeActive } from '../../store/process-identity.js';
import { storeBusy } from '../../store/busy.js';
import type { Db } from '../../store/db.js';
import type { Usage } from '../../vm/usage.js';
import type { BackoffPolicy } from '../backoff.js';
import type { Job } from '../plan/index.js';
import { reclaimDeadLeases, releaseLease, takeLease, type SlotRequest } from '../slots.js';
import {
  afterAttempt, finalState, type AfterAttempt, type ExperimentState,
  type FinishedAttempt } from '../states.js';
import { AttemptRecord, AttemptRow, Experiment, JobRecord, JobRow, NewExperiment, attemptFromRow, jobFromRow, now } from './types.js';
import { abandoned, attemptStatus, getExperiment, isBeingCreated, jobCounts, recountTotals, requireExperiment } from './reads.js';

/** How experiments, jobs and attempts change state: each change one transaction (creation, claims, attempts started and finished, cancel, release). */

export interface InsertOptions {
  /** The creating process (`pid:starttime`): the experiment's owner until its last job is stored. */
  creator: string;
  /** Jobs per transaction. */
  batchSize?: number;
  /** Awaited between transactions (to let the event loop run); a throw stops and removes what was stored. */
  pause?: () => Promise<void>;
  /** Where its jobs run: stored with the experiment, in the same transaction (none means local). */
  executor?: ExecutorChoice;
}

/**
 * Inserts an experiment and its jobs, in transactions of `batchSize` jobs, so no
 * single transaction holds the store's write lock for long. Until the last job is
 * stored the experiment stays `created` and owned by its creator: runners refuse
 * it (claimExperiment), and if the creator dies half-way the next creation under
 * that name replaces it. If anything fails on the way, what was stored is removed.
 */
export async function insertExperiment(db: Db, e: NewExperiment, jobs: Iterable<Job>, o: InsertOptions): Promise<number> {
  const size = Math.max(1, o.batchSize ?? 2000);
  const it = jobs[Symbol.iterator]();
  const insertJob = db.prepare(`INSERT INTO experiment_jobs (experiment, idx, params, commands, state) VALUES (?, ?, ?, ?, 'pending')`);
  // Its parameters one row each and its kept totals (migration 19) go with the jobs, here: the only place jobs are stored.
  const insertParam = db.prepare('INSERT INTO job_params (experiment, name, value, idx) VALUES (?, ?, ?, ?)');
  const addPending = db.prepare('UPDATE experiment_summaries SET pending = pending + ? WHERE experiment = ?');
  let n = 0;
  const first = db.transaction(() => {
    const old = getExperiment(db, e.name);
    if (old && !abandoned(old)) {
      throw new VmwuError('EXPERIMENT_EXISTS', `an experiment named "${e.name}" already exists`, 'choose another name with --name, or continue it with `vmwu resume`');
    }
    if (old) db.prepare('DELETE FROM experiments WHERE name = ?').run(e.name);
    const t = now();
    db.prepare(`INSERT INTO experiments (name, created_at, updated_at, state, owner, plan_path, plan_root, plan_text, seed, target, resources,
        max_retries, slots, job_count, dir, after_experiment, after_condition, no_cache) VALUES (?, ?, ?, 'created', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(e.name, t, t, o.creator, e.planPath, e.planRoot, e.planText, e.seed, JSON.stringify(e.target), JSON.stringify(e.resources),
        e.maxRetries, e.slots, e.jobCount, e.dir, e.after?.experiment ?? null, e.after?.condition ?? null, e.noCache ? 1 : 0);
    if (o.executor && o.executor.kind !== 'local') setExecutor(db, e.name, o.executor);
  });
  /** One transaction of jobs; true once the last is stored and the experiment released. */
  const batch = db.transaction((): boolean => {
    let added = 0;
    let done = false;
    for (; added < size; added++) {
      const r = it.next();
      if (r.done) {
        done = true;
        break;
      }
      const job = r.value;
      insertJob.run(e.name, job.index, JSON.stringify(job.params), JSON.stringify(job.commands));
      for (const [k, v] of Object.entries(job.params)) insertParam.run(e.name, k, String(v), job.index);
    }
    n += added;
    addPending.run(added, e.name);
    if (!done) return false;
    if (n !== e.jobCount) throw new VmwuError('INTERNAL', `expected ${e.jobCount} jobs, expanded ${n}`);
    db.prepare(`UPDATE experiments SET owner = NULL, updated_at = ? WHERE name = ? AND owner = ?`).run(now(), e.name, o.creator);
    return true;
  });
  typedBusy(e.name, () => first.immediate());
  try {
    while (!typedBusy(e.name, () => batch.immediate())) await o.pause?.();
  } catch (err) {
    try {
      typedBusy(e.name, () => db.transaction(() => db.prepare('DELETE FROM experiments WHERE name = ? AND owner = ?').run(e.name, o.creator)).immediate());
    } catch {
      // Left half-made, it stays owned by this (soon dead) process: the next creation under its name replaces it.
    }
    throw err;
  }
  return n;
}

/**
 * Sets an experiment's kept totals (migration 19) to a count of its rows. The
 * library keeps them as it writes; this is for rows written around it (copied in
 * SQL by a benchmark, a repair), and costs a scan of the experiment's rows.
 */
export function resetTotals(db: Db, name: string): void {
  const t = recountTotals(db, name);
  const c = t.counts;
  db.prepare(`INSERT INTO experiment_summaries (experiment, pending, running, succeeded, failed, cancelled, retrying, first_started_at,
      attempts, attempts_running, attempts_with_run, timed, timed_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (experiment) DO UPDATE SET pending = excluded.pending, running = excluded.running, succeeded = excluded.succeeded,
      failed = excluded.failed, cancelled = excluded.cancelled, retrying = excluded.retrying, first_started_at = excluded.first_started_at,
      attempts = excluded.attempts, attempts_running = excluded.attempts_running, attempts_with_run = excluded.attempts_with_run,
      timed = excluded.timed, timed_ms = excluded.timed_ms`)
    .run(name, c.pending, c.running, c.succeeded, c.failed, c.cancelled, t.retrying, t.firstStartedAt, t.attempts, t.attemptsRunning, t.attemptsWithRun, t.timed, t.timedMs);
}

/** A write transaction; a store locked for longer than the busy timeout is a typed error, not a raw SqliteError. */
function typedBusy<T>(name: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw storeBusy(err, `storing experiment ${name}`) ?? err;
  }
}

export interface ClaimedExperiment {
  experiment: Experiment;
  /** Attempts a dead process left running; the caller settles each (adopt its result or re-queue its job). */
  orphans: AttemptRecord[];
}

/**
 * Makes this process the experiment's only runner. Refused while another living
 * process runs it. Jobs a dead runner left `running` are taken over (still
 * `running`, now owned here) and returned with their attempts for recovery.
 */
export function claimExperiment(db: Db, name: string, me: string, opts: { restartCancelled: boolean; isAlive?: (id: string) => boolean }): ClaimedExperiment {
  const alive = opts.isAlive ?? mayBeActive;
  const tx = db.transaction((): ClaimedExperiment => {
    const e = requireExperiment(db, name);
    if (isBeingCreated(e) && e.owner !== me) refuseIncomplete(e, alive);
    if (e.owner && e.owner !== me && alive(e.owner)) {
      throw new VmwuError('EXPERIMENT_BUSY', `experiment ${name} is being run by ${describeOwner(e.owner)}`,
        `watch it with \`vmwu status ${name}\`, or stop it with \`vmwu cancel ${name}\``);
    }
    if (e.state === 'succeeded' || e.state === 'failed') return { experiment: e, orphans: [] };
    if (e.state === 'cancelled') {
      if (!opts.restartCancelled) return { experiment: e, orphans: [] };
      requeueCancelled(db, name);
    }
    const orphans = (db.prepare(`SELECT * FROM attempts WHERE experiment = ? AND status = 'running' ORDER BY job, attempt`).all(name) as AttemptRow[]).map(attemptFromRow);
    db.prepare(`UPDATE experiment_jobs SET owner = ? WHERE experiment = ? AND state = 'running'`).run(me, name);
    // A running job without a running attempt cannot come from this code, but would
    // otherwise never finish: re-queue it.
    db.prepare(`UPDATE experiment_jobs SET state = 'pending', owner = NULL WHERE experiment = ? AND state = 'running'
      AND idx NOT IN (SELECT job FROM attempts WHERE experiment = ? AND status = 'running')`).run(name, name);
    db.prepare(`UPDATE experiments SET state = 'running', owner = ?, finished_at = NULL, updated_at = ? WHERE name = ?`).run(me, now(), name);
    return { experiment: requireExperiment(db, name), orphans };
  });
  return tx.immediate();
}

/** A runner or a cancel may not touch an experiment whose jobs are not all stored. */
function refuseIncomplete(e: Experiment, alive: (id: string) => boolean): never {
  if (alive(e.owner!)) {
    throw new VmwuError('EXPERIMENT_BUSY', `experiment ${e.name} is still being created by ${describeOwner(e.owner!)}`, `wait a moment, then \`vmwu status ${e.name}\``);
  }
  throw new VmwuError('EXPERIMENT_INCOMPLETE', `experiment ${e.name} was never completely created: ${describeOwner(e.owner!)} stopped while storing its jobs`,
    `create it again (\`vmwu sweep PLAN --name ${e.name}\`), which replaces it`);
}

function requeueCancelled(db: Db, name: string): void {
  db.prepare(`UPDATE experiment_jobs SET state = 'pending', owner = NULL, not_before = 0, finished_at = NULL WHERE experiment = ? AND state = 'cancelled'`).run(name);
}

/**
 * `vmwu resume --detach` of a cancelled experiment: its cancelled jobs are
 * re-queued and it becomes `stopped` here, so the background worker (which never
 * un-cancels by itself) picks it up. Returns whether anything was reopened.
 */
export function reopenCancelled(db: Db, name: string, isAlive: (id: string) => boolean = mayBeActive): boolean {
  const tx = db.transaction((): boolean => {
    const e = requireExperiment(db, name);
    if (e.state !== 'cancelled' || (e.owner && isAlive(e.owner))) return false;
    requeueCancelled(db, name);
    db.prepare(`UPDATE experiments SET state = 'stopped', owner = NULL, finished_at = NULL, updated_at = ? WHERE name = ?`).run(now(), name);
    return true;
  });
  return tx.immediate();
}

export function recordRunSlots(db: Db, name: string, slots: number, explain: string): void {
  db.prepare('UPDATE experiments SET run_slots = ?, run_slots_explain = ?, updated_at = ? WHERE name = ?').run(slots, explain, now(), name);
}

export type Claim =
  | { kind: 'claimed'; job: JobRecord; attempt: number; outDir: string }
  | { kind: 'full' }
  /** Nothing startable: `nextAt` is the earliest backoff end of a pending job, null when none is pending. */
  | { kind: 'idle'; nextAt: number | null };

export interface ClaimRequest extends SlotRequest {
  experiment: string;
  owner: string;
  nowMs: number;
  /** Where the attempt's outputs go. */
  outDir(job: number, attempt: number): string;
  isAlive?: (id: string) => boolean;
  /** False when the attempt runs on another machine: it takes no slot of this host. */
  lease?: boolean;
}

/**
 * Takes the next startable job and a host slot for it in one IMMEDIATE
 * transaction, so a slot is never held without its job nor a job run without a
 * slot, and two processes never take the same slot or job.
 */
export function claimNext(db: Db, r: ClaimRequest): Claim {
  const tx = db.transaction((): Claim => {
    reclaimDeadLeases(db, r.isAlive ?? mayBeActive);
    const row = db.prepare(`SELECT * FROM experiment_jobs WHERE experiment = ? AND state = 'pending' AND not_before <= ? ORDER BY idx LIMIT 1`)
      .get(r.experiment, r.nowMs) as JobRow | undefined;
    if (!row) {
      const next = db.prepare(`SELECT MIN(not_before) AS t FROM experiment_jobs WHERE experiment = ? AND state = 'pending'`).get(r.experiment) as { t: number | null };
      return { kind: 'idle', nextAt: next.t };
    }
    if (r.lease !== false && !takeLease(db, { ...r, job: row.idx })) return { kind: 'full' };
    const attempt = row.attempts + 1;
    const outDir = r.outDir(row.idx, attempt);
    const t = now();
    db.prepare(`UPDATE experiment_jobs SET state = 'running', owner = ?, attempts = ?, not_before = 0, started_at = COALESCE(started_at, ?)
      WHERE experiment = ? AND idx = ?`).run(r.owner, attempt, t, r.experiment, row.idx);
    db.prepare(`INSERT INTO attempts (experiment, job, attempt, owner, status, out_dir, started_at) VALUES (?, ?, ?, ?, 'running', ?, ?)`)
      .run(r.experiment, row.idx, attempt, r.owner, outDir, t);
    return { kind: 'claimed', job: jobFromRow({ ...row, state: 'running', owner: r.owner, attempts: attempt }), attempt, outDir };
  });
  return tx.immediate();
}

export function setAttemptHost(db: Db, experiment: string, job: number, attempt: number, host: string): void {
  db.prepare('UPDATE attempts SET host = ? WHERE experiment = ? AND job = ? AND attempt = ?').run(host, experiment, job, attempt);
}

export function setAttemptRun(db: Db, experiment: string, job: number, attempt: number, runId: string): void {
  db.prepare('UPDATE attempts SET run_id = ? WHERE experiment = ? AND job = ? AND attempt = ?').run(runId, experiment, job, attempt);
}

/** Resource use measured after the attempt ended (Slurm's accounting arrives late); replaces what the node measured. */
export function setAttemptUsage(db: Db, experiment: string, job: number, attempt: number, u: Usage): void {
  db.prepare('UPDATE attempts SET cpu_ms = ?, max_rss_kib = ?, usage_source = ? WHERE experiment = ? AND job = ? AND attempt = ?')
    .run(u.cpuMs, u.maxRssKiB, u.source, experiment, job, attempt);
}

/**
 * An attempt that started on a machine that cannot write the store (a compute
 * node): recorded from its report by the submitter, which owns the job. The job
 * moves to running only if it is pending and this is a newer attempt; an attempt
 * already recorded is left as it is, so a report ingested twice changes nothing.
 * Returns whether the attempt row is new.
 */
export function recordStartedAttempt(db: Db, a: { experiment: string; job: number; attempt: number; owner: string; runner: string; host: string | null; runId: string | null; batchId: string | null; outDir: string; at: string }): boolean {
  if (attemptStatus(db, a.experiment, a.job, a.attempt)) return false;
  const moved = db.prepare(`UPDATE experiment_jobs SET state = 'running', owner = ?, attempts = ?, not_before = 0, started_at = COALESCE(started_at, ?)
    WHERE experiment = ? AND idx = ? AND state = 'pending' AND attempts < ?`).run(a.owner, a.attempt, a.at, a.experiment, a.job, a.attempt).changes;
  if (!moved) db.prepare('UPDATE experiment_jobs SET attempts = MAX(attempts, ?) WHERE experiment = ? AND idx = ?').run(a.attempt, a.experiment, a.job);
  db.prepare(`INSERT INTO attempts (experiment, job, attempt, owner, status, out_dir, started_at, run_id, host, batch_id) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)`)
    .run(a.experiment, a.job, a.attempt, a.runner, a.outDir, a.at, a.runId, a.host, a.batchId);
  return true;
}

export interface AttemptOutcome {
  status: FinishedAttempt;
  runId: string | null;
  exitCode: number | null;
  error: string | null;
  phases: Phases | null;
  totalMs: number | null;
  /** Stage-out destinations (relative to results/) of a successful attempt. */
  outputs?: string[];
  usage?: Usage | null;
  start?: StartRecord | null;
  /** Took a cached result instead of running (src/run/result-cache.ts): whose it was. */
  cachedFrom?: string;
  /** A multi-VM job's VMs. */
  vms?: VmOutcome[];
}

/**
 * Closes an attempt, moves its job on (done, retry after backoff, failed, pending
 * again, cancelled) and frees its slot, in one transaction. The job moves only if
 * this process still owns it running, so an attempt can never finish a job twice.
 */
export function finishAttempt(db: Db, f: { experiment: string; job: number; attempt: number; owner: string; outcome: AttemptOutcome; maxRetries: number; nowMs: number; backoff?: BackoffPolicy }): AfterAttempt | undefined {
  const tx = db.transaction((): AfterAttempt | undefined => {
    const o = f.outcome;
    const t = now();
    db.prepare(`UPDATE attempts SET status = ?, run_id = COALESCE(?, run_id), exit_code = ?, error = ?, phases = ?, total_ms = ?, finished_at = ?,
        cpu_ms = COALESCE(?, cpu_ms), max_rss_kib = COALESCE(?, max_rss_kib), usage_source = COALESCE(?, usage_source), start = ?, cached_from = ?, vms = ?
      WHERE experiment = ? AND job = ? AND attempt = ?`)
      .run(o.status, o.runId, o.exitCode, o.error, o.phases ? JSON.stringify(o.phases) : null, o.totalMs, t,
        o.usage?.cpuMs ?? null, o.usage?.maxRssKiB ?? null, o.usage?.source ?? null, o.start ? JSON.stringify(o.start) : null, o.cachedFrom ?? null,
        o.vms ? JSON.stringify(o.vms) : null,
        f.experiment, f.job, f.attempt);
    releaseLease(db, f.experiment, f.job);
    const job = db.prepare(`SELECT * FROM experiment_jobs WHERE experiment = ? AND idx = ? AND state = 'running' AND owner = ?`)
      .get(f.experiment, f.job, f.owner) as JobRow | undefined;
    if (!job) return undefined;
    const next = afterAttempt(o.status, job.failures, f.maxRetries, f.nowMs, f.backoff);
    const final = next.state === 'succeeded' || next.state === 'failed' || next.state === 'cancelled';
    db.prepare(`UPDATE experiment_jobs SET state = ?, failures = ?, not_before = ?, owner = NULL, exit_code = ?, error = ?, outputs = ?, finished_at = ?
      WHERE experiment = ? AND idx = ?`)
      .run(next.state, next.failures, next.notBefore, o.exitCode ?? job.exit_code,
        o.status === 'succeeded' ? null : (o.error ?? job.error), o.outputs ? JSON.stringify(o.outputs) : job.outputs, final ? t : null,
        f.experiment, f.job);
    return next;
  });
  return tx.immediate();
}

/**
 * Ends this process's turn on an experiment. `done`: every job settled, the state
 * follows from the jobs. `cancel`: what is still pending is cancelled. `interrupt`:
 * stopped, resumable.
 */
export function releaseExperiment(db: Db, name: string, me: string, how: 'done' | 'cancel' | 'interrupt'): Experiment {
  const tx = db.transaction((): Experiment => {
    const t = now();
    if (how === 'cancel') {
      db.prepare(`UPDATE experiment_jobs SET state = 'cancelled', owner = NULL, finished_at = ? WHERE experiment = ? AND state IN ('pending', 'running')`).run(t, name);
    }
    db.prepare('DELETE FROM slot_leases WHERE experiment = ? AND owner = ?').run(name, me);
    const state: ExperimentState = how === 'interrupt' ? 'stopped' : finalState(jobCounts(db, name)) ?? 'stopped';
    db.prepare(`UPDATE experiments SET state = ?, owner = NULL, updated_at = ?, finished_at = ? WHERE name = ? AND (owner = ? OR owner IS NULL)`)
      .run(state, t, state === 'stopped' ? null : t, name, me);
    return requireExperiment(db, name);
  });
  return tx.immediate();
}

/**
 * `vmwu cancel`: a living runner is asked to stop (state `cancelling`; it aborts its
 * VMs and settles its jobs); with no living runner the experiment is cancelled here.
 * Returns the state it is left in.
 */
export function requestCancel(db: Db, name: string, me: string, isAlive: (id: string) => boolean = mayBeActive): ExperimentState {
  const tx = db.transaction((): ExperimentState => {
    const e = requireExperiment(db, name);
    if (e.state === 'succeeded' || e.state === 'failed' || e.state === 'cancelled') return e.state;
    if (isBeingCreated(e) && e.owner !== me) refuseIncomplete(e, isAlive);
    const t = now();
    if (e.owner && e.owner !== me && isAlive(e.owner)) {
      db.prepare(`UPDATE experiments SET state = 'cancelling', updated_at = ? WHERE name = ?`).run(t, name);
      return 'cancelling';
    }
    db.prepare(`UPDATE attempts SET status = 'cancelled', finished_at = ?, error = COALESCE(error, 'cancelled after its runner died')
      WHERE experiment = ? AND status = 'running'`).run(t, name);
    db.prepare(`UPDATE experiment_jobs SET state = 'cancelled', owner = NULL, finished_at = ? WHERE experiment = ? AND state IN ('pending', 'running')`).run(t, name);
    db.prepare('DELETE FROM slot_leases WHERE experiment = ?').run(name);
    db.prepare(`UPDATE experiments SET state = 'cancelled', owner = NULL, updated_at = ?, finished_at = ? WHERE name = ?`).run(t, t, name);
    return 'cancelled';
  });
  return tx.immediate();
}

/**
 * `--after`: this process runs the experiment and waits, first, for the one it
 * waits for (src/sweep/wait.ts). It claims it as a runner does, so `vmwu cancel`
 * asks it to stop and a resume after it died starts the wait again.
 */
export function markWaiting(db: Db, name: string, waiting: boolean): void {
  db.prepare('UPDATE experiments SET waiting = ?, updated_at = ? WHERE name = ?').run(waiting ? 1 : 0, now(), name);
}

/** Asks this experiment's own runner to cancel it, saying why: it stops what it sent out, then cancels the rest (state `cancelling`). */
export function requestCancelBecause(db: Db, name: string, why: string): void {
  db.prepare(`UPDATE experiments SET state = 'cancelling', waiting = 0, ended_why = ?, updated_at = ? WHERE name = ?`).run(why, now(), name);
}

/** Cancels an experiment that waited, without running a job of it: every job cancelled with `why`. */
export function cancelWaiting(db: Db, name: string, why: string): void {
  const tx = db.transaction(() => {
    const t = now();
    db.prepare(`UPDATE experiment_jobs SET state = 'cancelled', owner = NULL, error = ?, finished_at = ? WHERE experiment = ? AND state = 'pending'`).run(why, t, name);
    db.prepare(`UPDATE experiments SET state = 'cancelled', owner = NULL, waiting = 0, ended_why = ?, updated_at = ?, finished_at = ? WHERE name = ?`).run(why, t, t, name);
  });
  tx.immediate();
}
