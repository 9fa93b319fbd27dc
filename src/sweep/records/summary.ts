import { JOB_STATES, type JobCounts, type JobState } from '../states.js';

/**
 * An experiment's totals as the store keeps them beside its rows (migration 19:
 * `experiment_summaries`, kept by triggers in the transaction of every change to
 * a job or an attempt), and what is derived from them: job counts, the ETA, the
 * change hub's signature. Pure: the reads are in reads.ts.
 */

export interface ExperimentTotals {
  experiment: string;
  counts: JobCounts;
  /** Jobs pending after a failure: waiting to retry. */
  retrying: number;
  /** The first time any of its jobs started; null before one has. */
  firstStartedAt: string | null;
  attempts: number;
  attemptsRunning: number;
  /** Attempts whose run id is known (a local run, or an SSH or batch attempt once it reported). */
  attemptsWithRun: number;
  /** Attempts that ran to an end (succeeded, failed, timeout) with a total time, and the sum of those times. */
  timed: number;
  timedMs: number;
}

/** A row of `experiment_summaries`, or of the recount that must equal it. */
export interface TotalsRow {
  experiment: string; pending: number; running: number; succeeded: number; failed: number; cancelled: number; retrying: number;
  first_started_at: string | null; attempts: number; attempts_running: number; attempts_with_run: number; timed: number; timed_ms: number;
}

export function totalsFromRow(r: TotalsRow): ExperimentTotals {
  const counts = { pending: r.pending, running: r.running, succeeded: r.succeeded, failed: r.failed, cancelled: r.cancelled, total: 0 };
  counts.total = JOB_STATES.reduce((n, s) => n + counts[s], 0);
  return {
    experiment: r.experiment, counts, retrying: r.retrying, firstStartedAt: r.first_started_at, attempts: r.attempts,
    attemptsRunning: r.attempts_running, attemptsWithRun: r.attempts_with_run, timed: r.timed, timedMs: r.timed_ms,
  };
}

/** The totals of an experiment without jobs or attempts. */
export function emptyTotals(experiment: string): ExperimentTotals {
  return totalsFromRow({
    experiment, pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0, retrying: 0, first_started_at: null,
    attempts: 0, attempts_running: 0, attempts_with_run: 0, timed: 0, timed_ms: 0,
  });
}

/** The mean time of an attempt that ran to an end; null before one has. */
export function meanAttemptMs(t: ExperimentTotals): number | null {
  return t.timed > 0 ? t.timedMs / t.timed : null;
}

/**
 * Estimated ms to go: mean attempt time × jobs left ÷ slots, for a running
 * experiment with slots and a measured attempt; null otherwise.
 */
export function estimateEtaMs(t: ExperimentTotals, running: boolean, slots: number | null): number | null {
  const mean = meanAttemptMs(t);
  if (!running || mean === null || !slots) return null;
  return Math.round(((t.counts.pending + t.counts.running) * mean) / slots);
}

/**
 * What the change hub compares per experiment: its row's state, update time and
 * owner, its job counts by state and its attempts (all, running, with a run id).
 * Any job or attempt change a dashboard shows changes one of these.
 */
export function changeSignature(e: { state: string; updatedAt: string; owner: string | null }, t: ExperimentTotals): string {
  const c = t.counts;
  return `${e.state}|${e.updatedAt}|${e.owner ?? ''}|${c.pending}/${c.running}/${c.succeeded}/${c.failed}/${c.cancelled}|a${t.attempts}/${t.attemptsRunning}/${t.attemptsWithRun}`;
}

/** How many jobs are in any of `states` (all of them when none is given). */
export function jobsInStates(c: JobCounts, states: readonly JobState[]): number {
  return states.length ? [...new Set(states)].reduce((n, s) => n + c[s], 0) : c.total;
}
