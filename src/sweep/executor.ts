import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import type { Phases } from '../run/ctl.js';
import { runJob, type RunResult } from '../run/run.js';
import { writeFileDurableSync } from '../store/durable.js';
import type { Store } from '../store/store.js';
import type { Experiment, JobRecord } from './records.js';
import { compileJob, jobScript, SCRIPT_NAME } from './script.js';
import { stageInEntries } from './staging.js';

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
}

/**
 * Where attempts run. The scheduler only needs this, so executors for Slurm or
 * SSH hosts can replace the local one: they boot the same work unit elsewhere and
 * bring the outputs back into `outDir`.
 */
export interface Executor {
  readonly name: string;
  runAttempt(store: Store, ctx: AttemptContext): Promise<AttemptResult>;
  /**
   * Executors that run jobs on other machines say how many attempts may run at
   * once; the local host's slot rule and leases do not apply to them.
   */
  capacity?(store: Store, e: Experiment): Promise<{ slots: number; explain: string }>;
  /** Releases what the executor holds (connections) when the runner stops. */
  close?(): Promise<void>;
}

/** What one attempt boots with: the job script as an input, run by `sh`, and the job's variables. */
export interface JobLaunch {
  argv: string[];
  params: Record<string, string>;
  inputs: { path: string; name: string }[];
}

/**
 * Writes the attempt's job script beside its outputs (the exact script a job ran
 * is the first thing to look at when it fails) and lists what goes into the guest.
 */
export function prepareLaunch(ctx: Pick<AttemptContext, 'experiment' | 'job' | 'attempt' | 'outDir'>): JobLaunch {
  const { experiment: e, job } = ctx;
  const prog = compileJob(job.commands, `job ${job.index}`);
  const inputs = stageInEntries(prog.stageIn, e.planRoot);
  const scriptPath = `${ctx.outDir}.sh`;
  mkdirSync(dirname(scriptPath), { recursive: true });
  writeFileDurableSync(scriptPath, jobScript(prog, { experiment: e.name, job: job.index, attempt: ctx.attempt }));
  inputs.push({ path: scriptPath, name: SCRIPT_NAME });
  return { argv: ['sh', SCRIPT_NAME], params: jobParams(e, job), inputs };
}

/**
 * The variables a job's guest gets: the unit's parameter defaults, overridden by
 * the plan's values for this job, plus jobindex (as in Nimrod, so `$jobindex` works
 * in a shexec that the plan did not substitute).
 */
export function jobParams(e: Experiment, job: Pick<JobRecord, 'index' | 'params'>): Record<string, string> {
  return { ...e.target.paramDefaults, ...job.params, jobindex: String(job.index) };
}

/** Runs attempts as local QEMU instances with runJob: one boot per job. */
export const localExecutor: Executor = {
  name: 'local',
  async runAttempt(store, ctx) {
    const e = ctx.experiment;
    const launch = prepareLaunch(ctx);
    const r = await runJob(store, {
      base: e.target.base,
      layers: e.target.layers.length ? e.target.layers : undefined,
      ...launch,
      outDir: ctx.outDir,
      memoryMiB: e.resources.memoryMiB,
      cpus: e.resources.cpus,
      timeoutMs: e.resources.timeoutMs,
      maxOutputBytes: e.resources.maxOutputBytes,
      network: false,
      cold: e.resources.cold,
    }, {
      signal: ctx.signal,
      // The run id first: an attempt with a host but no run is one whose logs stream into its own directory (SSH, batch nodes).
      onStart: ({ id }) => {
        ctx.onRunId(id);
        ctx.onPlaced?.(hostname());
      },
    });
    return { runId: r.id, status: r.status, exitCode: r.exitCode, phases: r.phases, totalMs: r.totalMs, error: r.error, usage: r.usage, start: r.start };
  },
};
