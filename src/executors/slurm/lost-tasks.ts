import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../../store/db.js';
import type { AttemptOutcome } from '../../sweep/records/lifecycle.js';
import type { Experiment } from '../../sweep/records/types.js';
import { LOST_STATES, type TaskAccounting } from './accounting.js';
import { taskKey } from './open-tasks.js';
import { slurmDir } from './rounds.js';
import type { OpenTask } from './submissions.js';

/** Tasks that left the Slurm queue without a result: what each means for its job, requeued uncounted when it went with its node, else failed with the reason. */

/** How long a task may be gone from the queue before its result file must be visible (NFS caches directory listings). */
export function lostGraceMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.VMWU_SLURM_GRACE_MS);
  return Number.isFinite(v) && v >= 0 ? v : 30_000;
}

/** The last non-empty line of a task's Slurm output file: the batch script's or slurmstepd's reason. */
function taskOutputTail(e: Experiment, key: string): { file: string; last: string | undefined } {
  const file = join(slurmDir(e), `${key}.out`);
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // never written: the task did not start
  }
  return { file, last: text.trimEnd().split('\n').filter((l) => l.trim()).pop()?.slice(0, 300) };
}

/**
 * What a task that left the queue without a result means for its job. Slurm's
 * accounting, when the cluster keeps it, says why: a node that failed (or a
 * preemption) loses the attempt through no fault of the job, which goes back to
 * pending; a time limit, an out-of-memory kill or a failure counts against its
 * retries. Without accounting, the task's output file is the witness: a task that
 * never started (the node check failed) or that slurmstepd killed counts; one
 * that started and vanished without a word went with its node.
 */
export function lostOutcome(key: string, a: TaskAccounting | undefined, started: boolean, tail: { file: string; last: string | undefined }, cancelling: boolean): AttemptOutcome {
  const base = { runId: null, exitCode: null, phases: null, totalMs: null, usage: null };
  if (cancelling) return { ...base, status: 'cancelled', error: 'cancelled' };
  const said = tail.last ? `: ${tail.last}` : '';
  if (a?.state && LOST_STATES.has(a.state)) {
    return { ...base, status: 'interrupted', error: `lost: Slurm task ${key} ended ${a.state}${a.node ? ` on node ${a.node}` : ''}` };
  }
  if (a?.state) return { ...base, status: 'error', error: `Slurm task ${key} ended ${a.state} without a result${said} (${tail.file})` };
  if (started && !/slurmstepd|time limit|oom|out of memory|cancelled/i.test(tail.last ?? '')) {
    return { ...base, status: 'interrupted', error: `lost: Slurm task ${key} left the queue without a result (its node failed?)` };
  }
  return { ...base, status: 'error', error: `Slurm task ${key} ended without a result${said} (${tail.file})` };
}

/** An attempt the submitter settles itself: its task, the node it ran on (if known) and its outcome. */
export interface LostAttempt {
  task: OpenTask;
  key: string;
  host: string | null;
  outcome: AttemptOutcome;
}

/** What became of these gone tasks: Slurm's accounting of them all in one call (`acct`, when the cluster keeps it), else what the store and their output files say. */
export function lostAttempts(db: Db, e: Experiment, gone: OpenTask[], acct: Map<string, TaskAccounting> | undefined): LostAttempt[] {
  const started = db.prepare('SELECT host FROM attempts WHERE experiment = ? AND job = ? AND attempt = ?');
  return gone.map((task) => {
    const key = taskKey(task);
    const a = acct?.get(key);
    const attempt = started.get(e.name, task.job, task.attempt) as { host: string | null } | undefined;
    return { task, key, host: a?.node || attempt?.host || null, outcome: lostOutcome(key, a, Boolean(attempt), taskOutputTail(e, key), false) };
  });
}
