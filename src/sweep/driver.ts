import type { Phases } from '../run/phase-clock.js';
import type { RunResult, VmOutcome } from '../run/job-request.js';
import type { Store } from '../store/store.js';
import type { Experiment, JobRecord } from './records/types.js';

/** The driver interface the sweep runner calls to run attempts: built from small pieces, implemented by each executor in src/executors/<name>/. */

export interface AttemptContext {
  experiment: Experiment;
  job: JobRecord;
  attempt: number;
  /** New directory for this attempt's outputs; the work dir's files must end up in `<outDir>/work`. */
  outDir: string;
  signal: AbortSignal;
  /** Called as soon as the attempt has a run id, so `vmwu logs EXP/JOB` and crash recovery can find it. */
  onRunId(id: string): void;
  /** Called by executors that place jobs on other hosts, with the host chosen for this attempt. */
  onPlaced?(host: string): void;
  /** How many attempts its runner keeps going at once (the run's slots): a host's cores those will take are not idle between them. */
  slots?: number;
}

export interface AttemptResult {
  runId: string | null;
  /** `interrupted`: lost through no fault of the job (e.g. its host vanished); it goes back to pending, not counted as a failure. */
  status: RunResult['status'] | 'interrupted';
  exitCode: number | null;
  phases: Phases | null;
  totalMs: number | null;
  error?: RunResult['error'];
  usage?: RunResult['usage'];
  start?: RunResult['start'];
  /** A multi-VM job's VMs (`--nodes`). */
  vms?: VmOutcome[];
}

/** The piece every executor has: runs one attempt of a job and brings its outputs back into `outDir`. */
export interface AttemptRunner {
  runAttempt(store: Store, ctx: AttemptContext): Promise<AttemptResult>;
}

/**
 * Executors that run jobs on other machines say how many attempts may run at
 * once; the local host's slot rule and leases do not apply to them.
 */
export interface OwnCapacity {
  capacity(store: Store, e: Experiment): Promise<{ slots: number; explain: string }>;
}

/** Executors that hold something (connections) release it when the runner stops. */
export interface Closable {
  close(): Promise<void>;
}

/**
 * Where attempts run. The scheduler only needs this, so executors for Slurm or
 * SSH hosts can replace the local one: they boot the same work unit elsewhere and
 * bring the outputs back into `outDir`.
 */
export interface Executor extends AttemptRunner, Partial<OwnCapacity>, Partial<Closable> {
  readonly name: string;
}
