import type { Store } from '../store/store.js';
import { mayBeActive } from '../store/process-identity.js';
import { afterVerdict, type After } from './after.js';
import { cancelWaiting, markWaiting, releaseExperiment, requestCancel } from './records/lifecycle.js';
import { getExperiment } from './records/reads.js';
import { effectiveState } from './states.js';

/**
 * Waiting for the experiment a sweep or a run goes after (`--after`,
 * src/sweep/after.ts), by polling the store, which is all any host sharing it
 * needs. A runner of that one which died leaves it `stopped`, which is waited out:
 * it may be resumed.
 */

export interface WaitOptions {
  signal?: AbortSignal;
  pollMs?: number;
  /** Said once, when it has to wait. */
  onWait?(message: string): void;
  /** Checked each poll: stop waiting (a cancel of the one waiting). */
  stop?(): boolean;
  /** Checked each poll: the wait can be handed on (to Slurm's own dependency, src/executors/slurm/after.ts). */
  handOver?(): boolean;
}

export type WaitVerdict = 'go' | { cancel: string } | 'stopped' | 'interrupted' | 'handed-over';

/** What the one waiting would do now, from the state of the one it goes after. */
export function afterVerdictNow(store: Store, after: After): ReturnType<typeof afterVerdict> {
  const dep = getExperiment(store.db, after.experiment);
  return afterVerdict(after, dep ? effectiveState(dep.state, dep.owner ? mayBeActive(dep.owner) : false) : undefined);
}

export async function awaitAfter(store: Store, after: After, o: WaitOptions = {}): Promise<WaitVerdict> {
  const pollMs = o.pollMs ?? Number(process.env.VMWU_AFTER_POLL_MS ?? 1000);
  let told = false;
  for (;;) {
    const verdict = afterVerdictNow(store, after);
    if (verdict !== 'wait') return verdict;
    if (o.stop?.()) return 'stopped';
    if (o.handOver?.()) return 'handed-over';
    if (o.signal?.aborted) return 'interrupted';
    if (!told) {
      o.onWait?.(`waiting for experiment ${after.experiment} to ${after.condition === 'succeeded' ? 'succeed' : 'finish'}`);
      told = true;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, pollMs);
      o.signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }
}

/**
 * A claimed experiment's runner, before it runs a job: `go` once the one it runs
 * after ended as asked; `handed-over` when `handOver` says the wait goes on elsewhere
 * (Slurm's dependency); `cancelled` when it cannot any more (every job cancelled
 * with the reason), or when `vmwu cancel` asked this one to stop; `interrupted` by
 * the signal (released as `stopped`: a resume waits again). Shows as `waiting` meanwhile.
 */
export async function waitForAfter(store: Store, name: string, after: After, me: string, o: WaitOptions = {}): Promise<'go' | 'cancelled' | 'interrupted' | 'handed-over'> {
  const db = store.db;
  const v = await awaitAfter(store, after, {
    ...o,
    onWait: (m) => {
      markWaiting(db, name, true);
      o.onWait?.(m);
    },
    stop: () => getExperiment(db, name)?.state !== 'running',
  });
  // Handed over, it still waits (on Slurm): shown so until the other ends.
  if (v === 'handed-over') {
    markWaiting(db, name, true);
    return v;
  }
  markWaiting(db, name, false);
  if (v === 'go') return 'go';
  if (v === 'interrupted') {
    releaseExperiment(db, name, me, 'interrupt');
    return 'interrupted';
  }
  if (v === 'stopped') {
    // `vmwu cancel` asked (cancelling): finished here, as this process is its runner.
    if (getExperiment(db, name)) requestCancel(db, name, me);
    return 'cancelled';
  }
  cancelWaiting(db, name, `cancelled: ${v.cancel}`);
  o.onWait?.(`cancelled: ${v.cancel}`);
  return 'cancelled';
}
