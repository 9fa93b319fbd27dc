import { backoffMs, type BackoffPolicy } from './backoff.js';

/**
 * The life of an experiment, its jobs and their attempts, as pure functions: the
 * store applies them inside transactions, the tests check them without a store.
 */

export type JobState = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/**
 * `stopped`: interrupted (Ctrl-C, SIGTERM) and resumable. An experiment whose owner
 * died shows as `stopped` too (see `effectiveState`), although the store still says
 * `running` until someone resumes or cancels it.
 */
export type ExperimentState = 'created' | 'running' | 'cancelling' | 'stopped' | 'succeeded' | 'failed' | 'cancelled';

/** `interrupted` and `cancelled` attempts were stopped by vmwu or lost with it; they are not the job's failures. */
export type AttemptStatus = 'running' | 'succeeded' | 'failed' | 'timeout' | 'error' | 'interrupted' | 'cancelled';
export type FinishedAttempt = Exclude<AttemptStatus, 'running'>;

export const JOB_STATES: JobState[] = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];

const JOB_TRANSITIONS: Record<JobState, JobState[]> = {
  pending: ['running', 'cancelled'],
  // back to pending: a retry after backoff, or an attempt lost with its process
  running: ['succeeded', 'failed', 'pending', 'cancelled'],
  succeeded: [],
  failed: [],
  // resume re-queues what a cancel left undone
  cancelled: ['pending'],
};

export function canTransition(from: JobState, to: JobState): boolean {
  return JOB_TRANSITIONS[from].includes(to);
}

export function isTerminalExperiment(s: ExperimentState): boolean {
  return s === 'succeeded' || s === 'failed' || s === 'cancelled';
}

export interface AfterAttempt {
  state: JobState;
  failures: number;
  /** Epoch ms before which the job is not started again (backoff). */
  notBefore: number;
}

/**
 * What a finished attempt does to its job. A failure (non-zero exit, walltime,
 * vmwu error) counts against the retry limit and is retried after a backoff; an
 * interruption does not count and the job is simply pending again.
 */
export function afterAttempt(status: FinishedAttempt, failures: number, maxRetries: number, nowMs: number, policy?: BackoffPolicy): AfterAttempt {
  switch (status) {
    case 'succeeded':
      return { state: 'succeeded', failures, notBefore: 0 };
    case 'interrupted':
      return { state: 'pending', failures, notBefore: 0 };
    case 'cancelled':
      return { state: 'cancelled', failures, notBefore: 0 };
    default: {
      const f = failures + 1;
      if (f > maxRetries) return { state: 'failed', failures: f, notBefore: 0 };
      return { state: 'pending', failures: f, notBefore: nowMs + backoffMs(f, policy) };
    }
  }
}

export type JobCounts = Record<JobState, number> & { total: number };

/** The state an experiment ends in once no job is pending or running; undefined while work remains. */
export function finalState(c: JobCounts): ExperimentState | undefined {
  if (c.pending > 0 || c.running > 0) return undefined;
  if (c.cancelled > 0) return 'cancelled';
  return c.failed > 0 ? 'failed' : 'succeeded';
}

/** What the user should be told: a `running` experiment whose owner is gone is `stopped`, waiting for `vmwu resume`. */
export function effectiveState(state: ExperimentState, ownerAlive: boolean): ExperimentState {
  if ((state === 'running' || state === 'cancelling') && !ownerAlive) return 'stopped';
  return state;
}

/**
 * An attempt left `running` by a dead process. If its run finished and wrote its
 * result (run.json in the attempt's out dir, written before the run record is
 * closed), that outcome stands and the job is not run again; otherwise the
 * attempt was lost mid-way and the job is pending again.
 */
export function recoverAttempt(result: { status: string; errorCode?: string } | undefined): { adopt: FinishedAttempt } | 'interrupted' {
  if (!result || result.errorCode === 'INTERRUPTED') return 'interrupted';
  switch (result.status) {
    case 'succeeded':
    case 'failed':
    case 'timeout':
    case 'error':
      return { adopt: result.status };
    default:
      return 'interrupted';
  }
}
