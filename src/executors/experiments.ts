import type { Store } from '../store/store.js';
import { cancelExperiment } from '../sweep/experiment.js';
import { selfIdentity } from '../store/process-identity.js';
import { runExperiment, type ExperimentSummary, type RunExperimentOptions } from '../sweep/runner.js';
import type { ExperimentState } from '../sweep/states.js';
import { getExecutor } from '../sweep/executor-choice.js';
import { cancelArrays, cancelOpenTasks, runSlurmExperiment } from './slurm/runner.js';
import { sshExecutor } from './ssh/executor.js';
import { localExecutor } from './local/driver.js';
import { type SshOptions } from '../request/executor.js';

/**
 * How an experiment is run, resumed (`restartCancelled`) and cancelled on the
 * executor it was created with: the one place that decides it, for the CLI, the
 * background worker and the dashboard alike.
 */
export function runExperimentOn(store: Store, name: string, opts: Omit<RunExperimentOptions, 'executor'> = {}): Promise<ExperimentSummary> {
  const choice = getExecutor(store.db, name);
  switch (choice.kind) {
    case 'slurm':
      return runSlurmExperiment(store, name, { signal: opts.signal, onEvent: opts.onEvent, restartCancelled: opts.restartCancelled, pollMs: opts.pollMs });
    case 'ssh':
      return runExperiment(store, name, { ...opts, executor: sshExecutor({ ...(choice.options as SshOptions), onEvent: opts.onEvent }) });
    default:
      return runExperiment(store, name, { ...opts, executor: localExecutor });
  }
}

/**
 * Cancels an experiment: a living runner is asked to stop its jobs and waited
 * for; with none, the store is cancelled here. On Slurm, arrays still in the
 * queue (a submitter that died leaves them there) are scancelled too. Returns the
 * final state and the Slurm arrays scancelled here.
 */
export async function cancelExperimentOn(store: Store, name: string, opts: { signal?: AbortSignal; pollMs?: number } = {}): Promise<{ state: ExperimentState; scancelled: string[] }> {
  const state = await cancelExperiment(store, name, opts);
  if (getExecutor(store.db, name).kind !== 'slurm' || state !== 'cancelled') return { state, scancelled: [] };
  const scancelled = await cancelArrays(store, name);
  cancelOpenTasks(store, name, selfIdentity());
  return { state, scancelled };
}
