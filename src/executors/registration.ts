import type { ExecutorChoice } from '../request/executor.js';
import type { Store } from '../store/store.js';
import type { ExperimentSummary, RunExperimentOptions } from '../sweep/runner.js';

/** What each executor (src/executors/<name>/register.ts) tells the dispatch about itself: how an experiment is run, cancelled and suspended on it. */

/** How a caller runs an experiment: the runner's options, less the executor, which the experiment's stored choice decides. */
export type DispatchOptions = Omit<RunExperimentOptions, 'executor'>;

export interface Registration {
  readonly kind: ExecutorChoice['kind'];
  /** Runs or resumes (`restartCancelled`) the experiment with its stored options until it settles, is cancelled or interrupted. */
  run(store: Store, name: string, options: Record<string, unknown>, o: DispatchOptions): Promise<ExperimentSummary>;
  /**
   * After the store cancelled the experiment: stops what still runs outside any
   * runner (Slurm arrays a dead submitter left queued); returns what it stopped.
   */
  cancelRest?(store: Store, name: string): Promise<string[]>;
  /** Why `vmwu suspend` cannot reach the jobs' vmwu from here (the hint given), when it cannot. */
  suspendRefusal?: string;
}
