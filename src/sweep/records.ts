import { VmwuError } from '../errors.js';
import type { Phases } from '../run/phase-clock.js';
import type { StartRecord } from '../run/fast-start/clone.js';
import { describeOwner, mayBeActive } from '../store/process-identity.js';
import type { Digest } from '../store/blobs.js';
import { storeBusy } from '../store/busy.js';
import type { Db } from '../store/db.js';
import type { Usage } from '../vm/usage.js';
import type { BackoffPolicy } from './backoff.js';
import { RecordedOutputs } from './destinations.js';
import type { Command, Job } from './plan/index.js';
import { reclaimDeadLeases, releaseLease, takeLease, type SlotRequest } from './slots.js';
import {
  afterAttempt, finalState, JOB_STATES, type AfterAttempt, type AttemptStatus, type ExperimentState,
  type FinishedAttempt, type JobCounts, type JobState,
} from './states.js';

/** What every job of an experiment boots: a unit's layer chain on its base, or a bare base. */
export interface Target {
  kind: 'unit' | 'base';
  /** `name:version` of the unit, or the base's name, for people. */
  label: string;
  /** Base digest, so a rebuilt base of the same name does not change a resumed experiment. */
  base: string;
  layers: Digest[];
  /** A unit's parameter defaults, exported to the guest unless the plan sets the same name. */
  paramDefaults: Record<string, string>;
}

export interface SweepResources {
  memoryMiB: number;
  cpus: number;
  timeoutMs: number;
  maxOutputBytes: number;
  /** Boot every job rather than restore it from a template (`--cold`). */
  cold?: boolean;
  /** Checkpoint each running job this often (`--checkpoint-every`): a lost attempt goes on from the latest. */
  checkpointEveryMs?: number;
  /** CPU features the unit needs (its `cpu:`): hosts whose guests lack one do not take its jobs. */
  cpuNeeds?: string[];
  /** Datasets every job attaches (by digest, so a later `data add` of the same name changes nothing here). */
  datasets?: { name: string; digest: string }[];
  scratchBytes?: number;
  rootBytes?: number;
  /** Every job's standard input: a host file (absolute), or a file in its work dir. */
  stdin?: { host: string } | { work: string };
}

export interface Experiment {
  name: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  state: ExperimentState;
  owner: string | null;
  planPath: string;
  planRoot: string;
  planText: string;
  seed: number;
  target: Target;
  resources: SweepResources;
  maxRetries: number;
  /** `--slots` as given; null means derived from the host each time it runs. */
  slots: number | null;
  runSlots: number | null;
  runSlotsExplain: string | null;
  jobCount: number;
  dir: string;
}

export interface JobRecord {
  experiment: string;
  index: number;
  params: Record<string, string>;
  commands: Command[];
  state: JobState;
  attempts: number;
  failures: number;
  owner: string | null;
  notBefore: number;
  exitCode: number | null;
  error: string | null;
  /** Stage-out destinations, relative to the experiment's results dir. */
  outputs: string[] | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface AttemptRecord {
  experiment: string;
  job: number;
  attempt: number;
  runId: string | null;
  owner: string;
  status: AttemptStatus;
  exitCode: number | null;
  error: string | null;
  outDir: string;
  startedAt: string;
  finishedAt: string | null;
  phases: Phases | null;
  totalMs: number | null;
  /** Where the attempt ran: this host, the SSH pool host or the Slurm node. */
  host: string | null;
  /** The batch system's id of the task that ran it (Slurm: ARRAYJOB_TASK). */
  batchId: string | null;
  /** CPU time and peak memory of its QEMU (from sacct under Slurm). */
  usage: Usage | null;
  /** Restored from a template or booted, and why a restore fell back. */
  start: StartRecord | null;
}

interface ExperimentRow {
  name: string; created_at: string; updated_at: string; finished_at: string | null; state: ExperimentState; owner: string | null;
  plan_path: string; plan_root: string; plan_text: string; seed: number; target: string; resources: string; max_retries: number;
  slots: number | null; run_slots: number | null; run_slots_explain: string | null; job_count: number; dir: string;
}
interface JobRow {
  experiment: string; idx: number; params: string; commands: string; state: JobState; attempts: number; failures: number;
  owner: string | null; not_before: number; exit_code: number | null; error: string | null; outputs: string | null;
  started_at: string | null; finished_at: string | null;
}
interface AttemptRow {
  experiment: string; job: number; attempt: number; run_id: string | null; owner: string; status: AttemptStatus;
  exit_code: number | null; error: string | null; out_dir: string; started_at: string; finished_at: string | null;
  phases: string | null; total_ms: number | null; host: string | null; batch_id: string | null;
  cpu_ms: number | null; max_rss_kib: number | null; usage_source: Usage['source'] | null; start: string | null;
}

const experimentFromRow = (r: ExperimentRow): Experiment => ({
  name: r.name, createdAt: r.created_at, updatedAt: r.updated_at, finishedAt: r.finished_at, state: r.state, owner: r.owner,
  planPath: r.plan_path, planRoot: r.plan_root, planText: r.plan_text, seed: r.seed, target: JSON.parse(r.target) as Target,
  resources: JSON.parse(r.resources) as SweepResources, maxRetries: r.max_retries, slots: r.slots, runSlots: r.run_slots,
  runSlotsExplain: r.run_slots_explain, jobCount: r.job_count, dir: r.dir,
});

const jobFromRow = (r: JobRow): JobRecord => ({
  experiment: r.experiment, index: r.idx, params: JSON.parse(r.params) as Record<string, string>, commands: JSON.parse(r.commands) as Command[],
  state: r.state, attempts: r.attempts, failures: r.failures, owner: r.owner, notBefore: r.not_before, exitCode: r.exit_code,
  error: r.error, outputs: r.outputs === null ? null : (JSON.parse(r.outputs) as string[]), startedAt: r.started_at, finishedAt: r.finished_at,
});

const attemptFromRow = (r: AttemptRow): AttemptRecord => ({
  experiment: r.experiment, job: r.job, attempt: r.attempt, runId: r.run_id, owner: r.owner, status: r.status, exitCode: r.exit_code,
  error: r.error, outDir: r.out_dir, startedAt: r.started_at, finishedAt: r.finished_at,
  phases: r.phases === null ? null : (JSON.parse(r.phases) as Phases), totalMs: r.total_ms, host: r.host ?? null, batchId: r.batch_id ?? null,
  usage: r.cpu_ms === null || r.cpu_ms === undefined || !r.usage_source ? null : { cpuMs: r.cpu_ms, maxRssKiB: r.max_rss_kib ?? 0, source: r.usage_source },
  start: r.start ? (JSON.parse(r.start) as StartRecord) : null,
});

const now = () => new Date().toISOString();

export type NewExperiment = Omit<Experiment, 'createdAt' | 'updatedAt' | 'finishedAt' | 'state' | 'owner' | 'runSlots' | 'runSlotsExplain'>;

export interface InsertOptions {
  /** The creating process (`pid:starttime`): the experiment's owner until its last job is stored. */
  creator: string;
  /** Jobs per transaction. */
  batchSize?: number;
  /** Awaited between transactions (to let the event loop run); a throw stops and removes what was stored. */
  pause?: () => Promise<void>;
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
  let n = 0;
  const first = db.transaction(() => {
    const old = getExperiment(db, e.name);
    if (old && !abandoned(old)) {
      throw new VmwuError('EXPERIMENT_EXISTS', `an experiment named "${e.name}" already exists`, 'choose another name with --name, or continue it with `vmwu resume`');
    }
    if (old) db.prepare('DELETE FROM experiments WHERE name = ?').run(e.name);
    const t = now();
    db.prepare(`INSERT INTO experiments (name, created_at, updated_at, state, owner, plan_path, plan_root, plan_text, seed, target, resources,
        max_retries, slots, job_count, dir) VALUES (?, ?, ?, 'created', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(e.name, t, t, o.creator, e.planPath, e.planRoot, e.planText, e.seed, JSON.stringify(e.target), JSON.stringify(e.resources),
        e.maxRetries, e.slots, e.jobCount, e.dir);
  });
  /** One transaction of jobs; true once the last is stored and the experiment released. */
  const batch = db.transaction((): boolean => {
    for (let i = 0; i < size; i++) {
      const r = it.next();
      if (r.done) {
        if (n !== e.jobCount) throw new VmwuError('INTERNAL', `expected ${e.jobCount} jobs, expanded ${n}`);
        db.prepare(`UPDATE experiments SET owner = NULL, updated_at = ? WHERE name = ? AND owner = ?`).run(now(), e.name, o.creator);
        return true;
      }
      const job = r.value;
      insertJob.run(e.name, job.index, JSON.stringify(job.params), JSON.stringify(job.commands));
      n++;
    }
    return false;
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

/** A write transaction; a store locked for longer than the busy timeout is a typed error, not a raw SqliteError. */
function typedBusy<T>(name: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw storeBusy(err, `storing experiment ${name}`) ?? err;
  }
}

/**
 * An experiment whose creator died before its last job was stored: `created`,
 * still owned (creation clears the owner at its end), by a process that is gone.
 */
export function abandoned(e: Experiment, isAlive: (id: string) => boolean = mayBeActive): boolean {
  return isBeingCreated(e) && !isAlive(e.owner!);
}

/** Still being created (or abandoned half-way): `created` with an owner. A runner never leaves that combination. */
export function isBeingCreated(e: Experiment): boolean {
  return e.state === 'created' && e.owner !== null;
}

export function getExperiment(db: Db, name: string): Experiment | undefined {
  const r = db.prepare('SELECT * FROM experiments WHERE name = ?').get(name) as ExperimentRow | undefined;
  return r && experimentFromRow(r);
}

export function requireExperiment(db: Db, name: string): Experiment {
  const e = getExperiment(db, name);
  if (e) return e;
  const names = (db.prepare('SELECT name FROM experiments ORDER BY created_at DESC LIMIT 10').all() as { name: string }[]).map((r) => r.name);
  throw new VmwuError('NO_EXPERIMENT', `no experiment named "${name}"`, names.length ? `known experiments: ${names.join(', ')}` : 'start one with `vmwu sweep PLAN --unit UNIT`');
}

export function listExperiments(db: Db): Experiment[] {
  return (db.prepare('SELECT * FROM experiments ORDER BY created_at DESC').all() as ExperimentRow[]).map(experimentFromRow);
}

export function jobCounts(db: Db, name: string): JobCounts {
  const c = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as JobCounts;
  c.total = 0;
  for (const r of db.prepare('SELECT state, COUNT(*) AS n FROM experiment_jobs WHERE experiment = ? GROUP BY state').all(name) as { state: JobState; n: number }[]) {
    c[r.state] = r.n;
    c.total += r.n;
  }
  return c;
}

export function getJob(db: Db, name: string, index: number): JobRecord | undefined {
  const r = db.prepare('SELECT * FROM experiment_jobs WHERE experiment = ? AND idx = ?').get(name, index) as JobRow | undefined;
  return r && jobFromRow(r);
}

export function listJobs(db: Db, name: string, state?: JobState): JobRecord[] {
  const rows = state
    ? db.prepare('SELECT * FROM experiment_jobs WHERE experiment = ? AND state = ? ORDER BY idx').all(name, state)
    : db.prepare('SELECT * FROM experiment_jobs WHERE experiment = ? ORDER BY idx').all(name);
  return (rows as JobRow[]).map(jobFromRow);
}

export function listAttempts(db: Db, name: string, job?: number): AttemptRecord[] {
  const rows = job === undefined
    ? db.prepare('SELECT * FROM attempts WHERE experiment = ? ORDER BY job, attempt').all(name)
    : db.prepare('SELECT * FROM attempts WHERE experiment = ? AND job = ? ORDER BY attempt').all(name, job);
  return (rows as AttemptRow[]).map(attemptFromRow);
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

/** Just an attempt's status (cheaper than the whole record, for checks made once per report). */
export function attemptStatus(db: Db, experiment: string, job: number, attempt: number): AttemptStatus | undefined {
  return (db.prepare('SELECT status FROM attempts WHERE experiment = ? AND job = ? AND attempt = ?').get(experiment, job, attempt) as { status: AttemptStatus } | undefined)?.status;
}

export function getAttempt(db: Db, experiment: string, job: number, attempt: number): AttemptRecord | undefined {
  const r = db.prepare('SELECT * FROM attempts WHERE experiment = ? AND job = ? AND attempt = ?').get(experiment, job, attempt) as AttemptRow | undefined;
  return r && attemptFromRow(r);
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
        cpu_ms = COALESCE(?, cpu_ms), max_rss_kib = COALESCE(?, max_rss_kib), usage_source = COALESCE(?, usage_source), start = ?
      WHERE experiment = ? AND job = ? AND attempt = ?`)
      .run(o.status, o.runId, o.exitCode, o.error, o.phases ? JSON.stringify(o.phases) : null, o.totalMs, t,
        o.usage?.cpuMs ?? null, o.usage?.maxRssKiB ?? null, o.usage?.source ?? null, o.start ? JSON.stringify(o.start) : null, f.experiment, f.job, f.attempt);
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

/** Every output the experiment's jobs have recorded (one scan), for stage-out's guard. */
export function recordedOutputs(db: Db, name: string): RecordedOutputs {
  const r = new RecordedOutputs();
  for (const row of db.prepare('SELECT idx, outputs FROM experiment_jobs WHERE experiment = ? AND outputs IS NOT NULL').all(name) as { idx: number; outputs: string }[]) {
    r.add(row.idx, JSON.parse(row.outputs) as string[]);
  }
  return r;
}

/** An abandoned half-made experiment does not hold its name: creating one under it replaces it. */
export function experimentNameTaken(db: Db, name: string): boolean {
  const e = getExperiment(db, name);
  return e !== undefined && !abandoned(e);
}

/** Summed counts per experiment for listings, in one query rather than one per experiment. */
export function countsByExperiment(db: Db): Map<string, JobCounts> {
  const out = new Map<string, JobCounts>();
  for (const r of db.prepare('SELECT experiment, state, COUNT(*) AS n FROM experiment_jobs GROUP BY experiment, state').all() as { experiment: string; state: JobState; n: number }[]) {
    let c = out.get(r.experiment);
    if (!c) {
      c = Object.fromEntries(JOB_STATES.map((s) => [s, 0])) as JobCounts;
      c.total = 0;
      out.set(r.experiment, c);
    }
    c[r.state] = r.n;
    c.total += r.n;
  }
  return out;
}
