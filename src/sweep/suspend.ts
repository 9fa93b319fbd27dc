import { VmwuError } from '../errors.js';
import type { CheckpointRecord } from '../run/checkpoint/format.js';
import { getRun } from '../run/records.js';
import { requestRunControl } from '../run/run-control.js';
import { deleteSetting, getSetting, putSetting, type Db } from '../store/db.js';
import type { Store } from '../store/store.js';
import { abandoned, listAttempts, requireExperiment } from './records/reads.js';

/**
 * Suspending a sweep (GridWay's suspend): its runner stops starting jobs, every
 * running job is checkpointed and stopped, and the experiment ends `stopped`.
 * `vmwu resume` takes it up again; each stopped job goes on from its checkpoint.
 * The request is a setting the runner polls, so it reaches a runner in another
 * process (a detached sweep, the dashboard's).
 */

const key = (name: string) => `suspend:${name}`;

export function suspendRequested(db: Db, name: string): boolean {
  return getSetting(db, key(name)) !== undefined;
}

export function clearSuspend(db: Db, name: string): void {
  deleteSetting(db, key(name));
}

const SETTLE_MS = 120_000;

/** Refused unless the experiment runs: only a running experiment can be suspended. */
export function requireSuspendable(db: Db, name: string): void {
  const e = requireExperiment(db, name);
  if (e.state !== 'running') throw new VmwuError('NOT_RUNNING', `experiment ${name} is ${e.state}`, 'only a running experiment can be suspended');
}

/**
 * Suspends the experiment; resolves with the checkpoints taken once none of its
 * jobs runs. Whether its executor's jobs can be reached from here is the
 * dispatch's call (src/executors/dispatch.ts suspendExperimentOn).
 */
export async function suspendExperiment(store: Store, name: string, o: { onCheckpoint?(job: number, rec: CheckpointRecord): void } = {}): Promise<CheckpointRecord[]> {
  requireSuspendable(store.db, name);
  putSetting(store.db, key(name), new Date().toISOString());
  const taken: CheckpointRecord[] = [];
  const asked = new Set<string>();
  const until = Date.now() + SETTLE_MS;
  for (;;) {
    const running = listAttempts(store.db, name).filter((a) => a.status === 'running');
    // Done once no job runs and the runner has let the experiment go (or is gone).
    const now = requireExperiment(store.db, name);
    if (!running.length && (now.state !== 'running' || abandoned(now))) return taken;
    if (Date.now() > until) throw new VmwuError('SUSPEND_TIMEOUT', `jobs of ${name} still run after ${SETTLE_MS / 1000} s: ${running.map((a) => a.job).join(', ')}`, 'run vmwu suspend again');
    for (const a of running) {
      const run = a.runId ? getRun(store.db, a.runId) : undefined;
      if (!run || run.status !== 'running' || !run.control || asked.has(run.id)) continue;
      asked.add(run.id);
      try {
        const rec = await requestRunControl(run.control, { op: 'checkpoint', stop: true });
        taken.push(rec);
        o.onCheckpoint?.(a.job, rec);
      } catch (err) {
        // Not running yet (asked again next round) or any more (it ends by itself).
        if (!(err instanceof VmwuError && err.code === 'NOT_RUNNING')) throw err;
        asked.delete(run.id);
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
