import type { Store } from '../../store/store.js';
import { finishAttempt } from '../../sweep/records/lifecycle.js';
import { getAttempt } from '../../sweep/records/reads.js';
import { ENDED_STATES } from './accounting.js';
import { queuedTasks, scancel } from './commands.js';
import { openTasks, settleTasks } from './submissions.js';

/** Cancelling a Slurm experiment's tasks: scancel its arrays still queued, and settle the tasks that left no result. */

/**
 * Settles the tasks of a cancelled experiment that left no result: an attempt that
 * had started is cancelled; a task that never started leaves no attempt.
 */
export function cancelOpenTasks(store: Store, name: string, me: string): void {
  const db = store.db;
  db.transaction(() => {
    const open = openTasks(db, name);
    for (const x of open) {
      if (getAttempt(db, name, x.job, x.attempt)?.status !== 'running') continue;
      finishAttempt(db, {
        experiment: name, job: x.job, attempt: x.attempt, owner: me, maxRetries: 0, nowMs: Date.now(),
        outcome: { status: 'cancelled', error: 'cancelled', runId: null, exitCode: null, phases: null, totalMs: null },
      });
    }
    settleTasks(db, name, open);
  }).immediate();
}

/** scancel every array of the experiment still in the queue, and wait until their tasks have left it. */
export async function cancelArrays(store: Store, name: string, pollMs = 300): Promise<string[]> {
  const ids = [...new Set(openTasks(store.db, name).map((t) => t.slurmJobId))];
  for (const id of ids) await scancel(id);
  for (;;) {
    const q = await queuedTasks(ids);
    if (q && ![...q.values()].some((t) => !ENDED_STATES.has(t.state))) break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return ids;
}
