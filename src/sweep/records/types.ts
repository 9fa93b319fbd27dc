import type { Phases } from '../../run/phase-clock.js';
import type { StartRecord } from '../../run/fast-start/clone.js';
import type { JobResources, Target } from '../../request/resolve.js';
import type { Usage } from '../../vm/usage.js';
import type { VmOutcome } from '../../run/job-request.js';
import type { Command } from '../plan/index.js';
import type { After, AfterCondition } from '../after.js';
import type { AttemptStatus, ExperimentState, JobState } from '../states.js';

/** Experiments, their jobs and attempts as the store holds them: the shapes, and their rows. */

/** What every job of an experiment gets: the resources its request resolved to (src/request/resolve.ts). */
export type SweepResources = JobResources;
export type { Target };

export interface Experiment {
  name: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  state: ExperimentState;
  owner: string | null;
  planPath: string;
  planRoot: string;
  planText: string;
  seed: number;
  target: Target;
  resources: SweepResources;
  maxRetries: number;
  /** `--slots` as given; null means derived from the host each time it runs. */
  slots: number | null;
  runSlots: number | null;
  runSlotsExplain: string | null;
  jobCount: number;
  dir: string;
  /** `--after`: the experiment this one waits for, and how that must end. */
  after: After | null;
  /** Its runner is waiting for `after` (shown as waiting). */
  waiting: boolean;
  /** Why it ended without running its jobs (the experiment it waited for failed). */
  endedWhy: string | null;
  /** `--no-cache`: every job runs, whatever the result cache holds (src/run/result-cache.ts). */
  noCache: boolean;
}

export interface JobRecord {
  experiment: string;
  index: number;
  params: Record<string, string>;
  commands: Command[];
  state: JobState;
  attempts: number;
  failures: number;
  owner: string | null;
  notBefore: number;
  exitCode: number | null;
  error: string | null;
  /** Stage-out destinations, relative to the experiment's results dir. */
  outputs: string[] | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface AttemptRecord {
  experiment: string;
  job: number;
  attempt: number;
  runId: string | null;
  owner: string;
  status: AttemptStatus;
  exitCode: number | null;
  error: string | null;
  outDir: string;
  startedAt: string;
  finishedAt: string | null;
  phases: Phases | null;
  totalMs: number | null;
  /** Where the attempt ran: this host, the SSH pool host or the Slurm node. */
  host: string | null;
  /** The batch system's id of the task that ran it (Slurm: ARRAYJOB_TASK). */
  batchId: string | null;
  /** CPU time and peak memory of its QEMU (from sacct under Slurm). */
  usage: Usage | null;
  /** Restored from a template or booted, and why a restore fell back. */
  start: StartRecord | null;
  /** Took the result cache's outputs instead of running: whose they were (`EXP/JOB attempt N`, or a run). */
  cachedFrom: string | null;
  /** A multi-VM job's VMs: each one's run, machine, status, phases and usage. */
  vms: VmOutcome[] | null;
}

export interface ExperimentRow {
  name: string; created_at: string; updated_at: string; finished_at: string | null; state: ExperimentState; owner: string | null;
  plan_path: string; plan_root: string; plan_text: string; seed: number; target: string; resources: string; max_retries: number;
  slots: number | null; run_slots: number | null; run_slots_explain: string | null; job_count: number; dir: string;
  after_experiment: string | null; after_condition: AfterCondition | null; waiting: number; ended_why: string | null; no_cache: number;
}
export interface JobRow {
  experiment: string; idx: number; params: string; commands: string; state: JobState; attempts: number; failures: number;
  owner: string | null; not_before: number; exit_code: number | null; error: string | null; outputs: string | null;
  started_at: string | null; finished_at: string | null;
}
export interface AttemptRow {
  experiment: string; job: number; attempt: number; run_id: string | null; owner: string; status: AttemptStatus;
  exit_code: number | null; error: string | null; out_dir: string; started_at: string; finished_at: string | null;
  phases: string | null; total_ms: number | null; host: string | null; batch_id: string | null;
  cpu_ms: number | null; max_rss_kib: number | null; usage_source: Usage['source'] | null; start: string | null; cached_from: string | null;
  vms: string | null;
}

export const experimentFromRow = (r: ExperimentRow): Experiment => ({
  name: r.name, createdAt: r.created_at, updatedAt: r.updated_at, finishedAt: r.finished_at, state: r.state, owner: r.owner,
  planPath: r.plan_path, planRoot: r.plan_root, planText: r.plan_text, seed: r.seed, target: JSON.parse(r.target) as Target,
  resources: JSON.parse(r.resources) as SweepResources, maxRetries: r.max_retries, slots: r.slots, runSlots: r.run_slots,
  runSlotsExplain: r.run_slots_explain, jobCount: r.job_count, dir: r.dir,
  after: r.after_experiment ? { experiment: r.after_experiment, condition: r.after_condition ?? 'succeeded' } : null,
  waiting: r.waiting === 1, endedWhy: r.ended_why, noCache: r.no_cache === 1,
});

export const jobFromRow = (r: JobRow): JobRecord => ({
  experiment: r.experiment, index: r.idx, params: JSON.parse(r.params) as Record<string, string>, commands: JSON.parse(r.commands) as Command[],
  state: r.state, attempts: r.attempts, failures: r.failures, owner: r.owner, notBefore: r.not_before, exitCode: r.exit_code,
  error: r.error, outputs: r.outputs === null ? null : (JSON.parse(r.outputs) as string[]), startedAt: r.started_at, finishedAt: r.finished_at,
});

export const attemptFromRow = (r: AttemptRow): AttemptRecord => ({
  experiment: r.experiment, job: r.job, attempt: r.attempt, runId: r.run_id, owner: r.owner, status: r.status, exitCode: r.exit_code,
  error: r.error, outDir: r.out_dir, startedAt: r.started_at, finishedAt: r.finished_at,
  phases: r.phases === null ? null : (JSON.parse(r.phases) as Phases), totalMs: r.total_ms, host: r.host ?? null, batchId: r.batch_id ?? null,
  usage: r.cpu_ms === null || r.cpu_ms === undefined || !r.usage_source ? null : { cpuMs: r.cpu_ms, maxRssKiB: r.max_rss_kib ?? 0, source: r.usage_source },
  start: r.start ? (JSON.parse(r.start) as StartRecord) : null, cachedFrom: r.cached_from ?? null,
  vms: r.vms ? (JSON.parse(r.vms) as VmOutcome[]) : null,
});

export const now = () => new Date().toISOString();

export type NewExperiment = Omit<Experiment, 'createdAt' | 'updatedAt' | 'finishedAt' | 'state' | 'owner' | 'runSlots' | 'runSlotsExplain' | 'waiting' | 'endedWhy'>;
