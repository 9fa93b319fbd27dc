/**
 * Parameter sweeps ("experiments"): a Nimrod plan expanded into jobs, each run in
 * its own work-unit VM, with retries, host-wide slots and crash recovery, all
 * recorded in the store. The CLI (src/cli/sweep.ts) is a thin layer over this;
 * the dashboard and remote executors call the same functions.
 */
export {
  cancelExperiment, checkExperimentName, createExperiment, experimentDir, experimentResults, experimentStatus,
  listExperimentSummaries, loadPlan, resultsDir,
} from './experiment.js';
export type { CreateOptions, ExperimentListing, ExperimentStatus, FailureInfo, JobResult, LoadedPlan } from './experiment.js';
export { runExperiment } from './runner.js';
export type { ExperimentSummary, Progress, RunExperimentOptions } from './runner.js';
export type { SweepEvent } from './outcome.js';
export type { AttemptContext, AttemptResult, Executor } from './driver.js';
export { getExperiment, getJob, listAttempts, listJobs, requireExperiment } from './records/reads.js';
export type { AttemptRecord, Experiment, JobRecord, SweepResources, Target } from './records/types.js';
export type { AttemptStatus, ExperimentState, JobCounts, JobState } from './states.js';

