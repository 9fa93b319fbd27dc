import { join } from 'node:path';
import { mayBeActive, ownerHost, parseIdentity } from '../../store/process-identity.js';
import type { Store } from '../../store/store.js';
import type { After } from '../after.js';
import { effectiveState, type ExperimentState, type JobCounts } from '../states.js';
import { allExperimentTotals, experimentTotals, listExperiments, listJobs, requireExperiment } from './reads.js';
import { emptyTotals, estimateEtaMs } from './summary.js';
import type { Experiment } from './types.js';

/**
 * An experiment listed or shown (`vmwu experiments`, `vmwu status`, the
 * dashboard): read from its row and the totals kept beside its jobs, so neither
 * depends on how many jobs it has. Reads only, and imports little, so the CLI
 * answers without loading what runs experiments.
 */

export function resultsDir(e: Experiment): string {
  return join(e.dir, 'results');
}

export interface Owner {
  pid: number;
  /** The host the runner runs on (null in stores from before hosts were recorded). */
  host: string | null;
  /** Whether it may still be running: alive on this host, or on a host that cannot be judged from here. */
  alive: boolean;
}

function ownerOf(e: Experiment): Owner | null {
  return e.owner ? { pid: parseIdentity(e.owner).pid, host: ownerHost(e.owner), alive: mayBeActive(e.owner) } : null;
}

/** What an experiment shows: its state, or `waiting` while its runner waits for the one it runs after. */
export type ShownState = ExperimentState | 'waiting';

/** `waiting` while a living runner waits for `after`. */
function shownState(e: Experiment, state: ExperimentState): ShownState {
  return e.waiting && state === 'running' ? 'waiting' : state;
}

export interface ExperimentListing {
  name: string;
  state: ShownState;
  /** `--after`: what it waits (or waited) for. */
  after: After | null;
  counts: JobCounts;
  done: number;
  total: number;
  target: string;
  createdAt: string;
  /** When its first job started; null before one has. */
  startedAt: string | null;
  finishedAt: string | null;
  owner: Owner | null;
  /** Estimated ms to go while it runs (see ExperimentStatus.etaMs); null otherwise. */
  etaMs: number | null;
}

export function listExperimentSummaries(store: Store): ExperimentListing[] {
  const totals = allExperimentTotals(store.db);
  return listExperiments(store.db).map((e) => {
    const t = totals.get(e.name) ?? emptyTotals(e.name);
    const c = t.counts;
    const owner = ownerOf(e);
    const state = shownState(e, effectiveState(e.state, owner?.alive ?? false));
    return {
      name: e.name, state, after: e.after, counts: c, done: c.succeeded + c.failed + c.cancelled,
      total: e.jobCount, target: e.target.label, createdAt: e.createdAt, startedAt: t.firstStartedAt, finishedAt: e.finishedAt, owner,
      etaMs: estimateEtaMs(t, state === 'running', e.runSlots ?? e.slots),
    };
  });
}

export interface FailureInfo {
  job: number;
  params: Record<string, string>;
  attempts: number;
  exitCode: number | null;
  error: string | null;
}

export interface ExperimentStatus {
  name: string;
  state: ShownState;
  /** `--after`: what it waits (or waited) for. */
  after: After | null;
  /** Why it ended without running (the experiment it waited for failed). */
  endedWhy: string | null;
  /** The state in the store; differs from `state` when the runner died. */
  storedState: ExperimentState;
  owner: Owner | null;
  target: string;
  counts: JobCounts;
  done: number;
  total: number;
  /** Jobs waiting for a retry (pending after at least one failure). */
  retrying: number;
  slots: number | null;
  slotsExplain: string | null;
  /** Estimated ms to go: mean attempt time × jobs left ÷ slots; null when not running or nothing measured yet. */
  etaMs: number | null;
  /** The failed jobs by index: all of them, or the first `failures` asked for (counts.failed says how many there are). */
  failures: FailureInfo[];
  dir: string;
  resultsDir: string;
  seed: number;
  createdAt: string;
  /** When its first job started; null before one has. */
  startedAt: string | null;
  finishedAt: string | null;
}

/** `failures`: list at most this many failed jobs (a display shows a few; JSON gets them all by default). */
export function experimentStatus(store: Store, name: string, o: { failures?: number } = {}): ExperimentStatus {
  const e = requireExperiment(store.db, name);
  const t = experimentTotals(store.db, name);
  const counts = t.counts;
  const owner = ownerOf(e);
  const state = effectiveState(e.state, owner?.alive ?? false);
  const slots = e.runSlots ?? e.slots;
  const failures = listJobs(store.db, name, 'failed', o.failures)
    .map((j) => ({ job: j.index, params: j.params, attempts: j.attempts, exitCode: j.exitCode, error: j.error }));
  return {
    name, state: shownState(e, state), after: e.after, endedWhy: e.endedWhy, storedState: e.state, owner, target: e.target.label, counts, done: counts.succeeded + counts.failed + counts.cancelled,
    total: e.jobCount, retrying: t.retrying, slots, slotsExplain: e.runSlotsExplain, etaMs: estimateEtaMs(t, state === 'running', slots), failures, dir: e.dir,
    resultsDir: resultsDir(e), seed: e.seed, createdAt: e.createdAt, startedAt: t.firstStartedAt, finishedAt: e.finishedAt,
  };
}
