import { VmwuError } from '../../errors.js';
import { mayBeActive } from '../../store/process-identity.js';
import type { Db } from '../../store/db.js';
import { RecordedOutputs } from '../destinations.js';
import { JOB_STATES, type AttemptStatus, type JobCounts, type JobState } from '../states.js';
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
