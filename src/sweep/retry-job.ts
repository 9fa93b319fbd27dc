import { VmwuError } from '../errors.js';
import { mayBeActive } from '../store/process-identity.js';
import type { Db } from '../store/db.js';
import { getJob, requireExperiment } from './records/reads.js';

/** One failed or cancelled job of an experiment given a fresh start from the dashboard, with its full retry budget, for the experiment's runner to take up. */

export interface RetryResult {
  /** The job is pending again. */
  job: number;
  /** Whether a living runner owns the experiment (it will pick the job up); otherwise the caller starts one. */
  runnerAlive: boolean;
}

/**
 * Gives one failed (or cancelled) job a fresh start: pending again with its failure
 * count reset, so it gets the experiment's full retry budget. A finished experiment
 * becomes `stopped`, so `vmwu resume` (or a background worker) runs the job; its
 * earlier attempts stay in the history. Done in one IMMEDIATE transaction.
 */
export function retryJob(db: Db, name: string, index: number, isAlive: (id: string) => boolean = mayBeActive): RetryResult {
  const tx = db.transaction((): RetryResult => {
    const e = requireExperiment(db, name);
    const j = getJob(db, name, index);
    if (!j) throw new VmwuError('NO_JOB', `experiment ${name} has no job ${index}`);
    if (j.state !== 'failed' && j.state !== 'cancelled') {
      throw new VmwuError('BAD_STATE', `job ${index} of ${name} is ${j.state}; only a failed or cancelled job can be retried`);
    }
    if (e.state === 'cancelling') throw new VmwuError('BAD_STATE', `experiment ${name} is being cancelled`);
    db.prepare(`UPDATE experiment_jobs SET state = 'pending', failures = 0, not_before = 0, owner = NULL, error = NULL, exit_code = NULL,
      finished_at = NULL WHERE experiment = ? AND idx = ?`).run(name, index);
    const runnerAlive = Boolean(e.owner && isAlive(e.owner));
    if (!runnerAlive || e.state !== 'running') {
      db.prepare(`UPDATE experiments SET state = 'stopped', finished_at = NULL, updated_at = ? WHERE name = ?`).run(new Date().toISOString(), name);
    }
    return { job: index, runnerAlive: runnerAlive && e.state === 'running' };
  });
  return tx.immediate();
}
