import type { Db } from '../../store/db.js';
import type { After } from '../../sweep/after.js';
import { getExecutor } from '../../sweep/executor-choice.js';
import { getExperiment } from '../../sweep/records/reads.js';
import { listSubmissions } from './submissions.js';

/**
 * `--after` handed to Slurm: while the experiment it follows runs on the same
 * cluster with every job out as an array, this one's arrays go out at once with
 * `--dependency=afterok:…` (`afterany` for `:finished`), so Slurm starts them when
 * those end, whether or not a submitter is watching. Returns the dependency, or
 * null while it cannot be said yet (the other is not on Slurm, or has jobs not out).
 *
 * A task of the other that fails and is retried in a later array leaves these
 * waiting on a dependency that can never be met: the submitter watching lifts it
 * once the other succeeded (liftDependency), or cancels this experiment if it failed.
 */
export function slurmDependency(db: Db, after: After): string | null {
  const dep = getExperiment(db, after.experiment);
  if (!dep || getExecutor(db, dep.name).kind !== 'slurm') return null;
  if (db.prepare(`SELECT 1 FROM experiment_jobs WHERE experiment = ? AND state = 'pending' LIMIT 1`).get(dep.name)) return null;
  const arrays = listSubmissions(db, dep.name, true).map((s) => s.slurmJobId);
  if (!arrays.length) return null;
  return `${after.condition === 'succeeded' ? 'afterok' : 'afterany'}:${arrays.join(':')}`;
}
