import { VmwuError } from '../../errors.js';
import { mayBeActive } from '../../store/process-identity.js';
import type { Db } from '../../store/db.js';
import { RecordedOutputs } from '../destinations.js';
import { type AttemptStatus, type JobCounts, type JobState } from '../states.js';
import { emptyTotals, totalsFromRow, type ExperimentTotals, type TotalsRow } from './summary.js';
import { AttemptRecord, AttemptRow, Experiment, ExperimentRow, JobRecord, JobRow, attemptFromRow, experimentFromRow, jobFromRow } from './types.js';

/** Reading experiments, jobs and attempts: nothing here writes. */

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

/** Job counts by state, from the totals kept with the rows: one row read, however many jobs. */
export function jobCounts(db: Db, name: string): JobCounts {
  return experimentTotals(db, name).counts;
}

/** The totals the store keeps for an experiment (summary.ts); an experiment it does not know has none. */
export function experimentTotals(db: Db, name: string): ExperimentTotals {
  const r = db.prepare('SELECT * FROM experiment_summaries WHERE experiment = ?').get(name) as TotalsRow | undefined;
  return r ? totalsFromRow(r) : emptyTotals(name);
}

/** Every experiment's kept totals, for listings and the change hub: one read of one row per experiment. */
export function allExperimentTotals(db: Db): Map<string, ExperimentTotals> {
  const out = new Map<string, ExperimentTotals>();
  for (const r of db.prepare('SELECT * FROM experiment_summaries').all() as TotalsRow[]) out.set(r.experiment, totalsFromRow(r));
  return out;
}

/**
 * The same totals counted from the rows (a scan of the experiment's jobs and
 * attempts): what the kept ones must always equal. For checks and tests, not for
 * reads on a request's path.
 */
export function recountTotals(db: Db, name: string): ExperimentTotals {
  const j = db.prepare(`SELECT COALESCE(SUM(state = 'pending'), 0) AS pending, COALESCE(SUM(state = 'running'), 0) AS running,
      COALESCE(SUM(state = 'succeeded'), 0) AS succeeded, COALESCE(SUM(state = 'failed'), 0) AS failed, COALESCE(SUM(state = 'cancelled'), 0) AS cancelled,
      COALESCE(SUM(state = 'pending' AND failures > 0), 0) AS retrying, MIN(started_at) AS first_started_at
    FROM experiment_jobs WHERE experiment = ?`).get(name) as Omit<TotalsRow, 'experiment' | 'attempts' | 'attempts_running' | 'attempts_with_run' | 'timed' | 'timed_ms'>;
  const a = db.prepare(`SELECT COUNT(*) AS attempts, COALESCE(SUM(status = 'running'), 0) AS attempts_running, COUNT(run_id) AS attempts_with_run,
      COALESCE(SUM(status IN ('succeeded', 'failed', 'timeout') AND total_ms IS NOT NULL), 0) AS timed,
      COALESCE(SUM(CASE WHEN status IN ('succeeded', 'failed', 'timeout') THEN total_ms ELSE 0 END), 0) AS timed_ms
    FROM attempts WHERE experiment = ?`).get(name) as Pick<TotalsRow, 'attempts' | 'attempts_running' | 'attempts_with_run' | 'timed' | 'timed_ms'>;
  return totalsFromRow({ experiment: name, ...j, ...a });
}

export function getJob(db: Db, name: string, index: number): JobRecord | undefined {
  const r = db.prepare('SELECT * FROM experiment_jobs WHERE experiment = ? AND idx = ?').get(name, index) as JobRow | undefined;
  return r && jobFromRow(r);
}

/** An experiment's jobs by index, those in `state` only if given, the first `limit` only if given. */
export function listJobs(db: Db, name: string, state?: JobState, limit = -1): JobRecord[] {
  const rows = state
    ? db.prepare('SELECT * FROM experiment_jobs WHERE experiment = ? AND state = ? ORDER BY idx LIMIT ?').all(name, state, limit)
    : db.prepare('SELECT * FROM experiment_jobs WHERE experiment = ? ORDER BY idx LIMIT ?').all(name, limit);
  return (rows as JobRow[]).map(jobFromRow);
}

export function listAttempts(db: Db, name: string, job?: number): AttemptRecord[] {
  const rows = job === undefined
    ? db.prepare('SELECT * FROM attempts WHERE experiment = ? ORDER BY job, attempt').all(name)
    : db.prepare('SELECT * FROM attempts WHERE experiment = ? AND job = ? ORDER BY attempt').all(name, job);
  return (rows as AttemptRow[]).map(attemptFromRow);
}

/** Just an attempt's status (cheaper than the whole record, for checks made once per report). */
export function attemptStatus(db: Db, experiment: string, job: number, attempt: number): AttemptStatus | undefined {
  return (db.prepare('SELECT status FROM attempts WHERE experiment = ? AND job = ? AND attempt = ?').get(experiment, job, attempt) as { status: AttemptStatus } | undefined)?.status;
}

export function getAttempt(db: Db, experiment: string, job: number, attempt: number): AttemptRecord | undefined {
  const r = db.prepare('SELECT * FROM attempts WHERE experiment = ? AND job = ? AND attempt = ?').get(experiment, job, attempt) as AttemptRow | undefined;
  return r && attemptFromRow(r);
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
