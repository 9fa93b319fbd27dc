import { VmwuError } from '../errors.js';
import type { CheckpointRecord } from '../run/checkpoint/format.js';
import type { Store } from '../store/store.js';
import { getExecutor } from '../sweep/executor-choice.js';
import { cancelExperiment } from '../sweep/experiment.js';
import type { ExperimentSummary } from '../sweep/runner.js';
import type { ExperimentState } from '../sweep/states.js';
import { requireSuspendable, suspendExperiment } from '../sweep/suspend.js';
import type { DispatchOptions } from './registration.js';
import { registrationFor } from './registry.js';

/**
 * How an experiment is run, resumed (`restartCancelled`), cancelled and suspended
 * on the executor it was created with: the one place that decides it, for the CLI,
 * the background worker (src/executors/worker.ts) and the dashboard alike.
 */

export function runExperimentOn(store: Store, name: string, opts: DispatchOptions = {}): Promise<ExperimentSummary> {
  const choice = getExecutor(store.db, name);
  return registrationFor(choice.kind).run(store, name, choice.options, opts);
}

/**
 * Cancels an experiment: a living runner is asked to stop its jobs and waited
 * for; with none, the store is cancelled here. On Slurm, arrays still in the
 * queue (a submitter that died leaves them there) are scancelled too. Returns the
 * final state and the Slurm arrays scancelled here.
 */
export async function cancelExperimentOn(store: Store, name: string, opts: { signal?: AbortSignal; pollMs?: number } = {}): Promise<{ state: ExperimentState; scancelled: string[] }> {
  const state = await cancelExperiment(store, name, opts);
  const rest = registrationFor(getExecutor(store.db, name).kind).cancelRest;
  if (!rest || state !== 'cancelled') return { state, scancelled: [] };
  return { state, scancelled: await rest(store, name) };
}

/**
 * Suspends a running experiment (src/sweep/suspend.ts): only one whose jobs'
 * vmwu this host can reach; a Slurm node's or a pool host's it cannot.
 */
export async function suspendExperimentOn(store: Store, name: string, o: { onCheckpoint?(job: number, rec: CheckpointRecord): void } = {}): Promise<CheckpointRecord[]> {
  requireSuspendable(store.db, name);
  const kind = getExecutor(store.db, name).kind;
  const refusal = registrationFor(kind).suspendRefusal;
  if (refusal !== undefined) throw new VmwuError('UNSUPPORTED', `experiment ${name} runs on ${kind}: only sweeps run on this host can be suspended yet`, refusal);
  return suspendExperiment(store, name, o);
}
