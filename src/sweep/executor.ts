import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import type { Phases } from '../run/phase-clock.js';
import { latestJobCheckpoint, type CheckpointRow } from '../run/checkpoint/records.js';
import { restoreRun } from '../run/checkpoint/restore.js';
import { runJob, type JobRequest, type RunHooks, type RunResult } from '../run/run.js';
import { isVmwuError } from '../errors.js';
import type { InstanceControl } from '../run/run-control.js';
import { writeFileDurableSync } from '../store/durable.js';
import type { Store } from '../store/store.js';
import { attemptStatus } from './records/reads.js';
import { type Experiment, type JobRecord, type SweepResources } from './records/types.js';
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

/**
 * A checkpoint of the running job every `everyMs` (`--checkpoint-every`); a
 * failure to take one is a warning, never the job's end.
 */
export function periodicCheckpoints(everyMs: number | undefined, onWarning: (m: string) => void = () => undefined): { onControl(control: InstanceControl): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  return {
    onControl: (control) => {
      if (!everyMs) return;
      timer = setInterval(() => {
        control.checkpoint({ stop: false }).catch((e: unknown) => onWarning(`checkpoint: ${(e as Error).message}`));
      }, everyMs);
      timer.unref();
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * The checkpoint a new attempt of a job goes on from: the job's latest, if its
 * run never finished (stopped by a suspend, lost with a crash or a host). A job
 * that finished and failed starts again from zero.
 */
export function resumableCheckpoint(store: Store, experiment: string, job: number): CheckpointRow | undefined {
  const ck = latestJobCheckpoint(store.db, experiment, job);
  if (!ck || ck.attempt === null) return undefined;
  const status = attemptStatus(store.db, experiment, job, ck.attempt);
  return status === 'interrupted' || status === 'error' || status === 'running' ? ck : undefined;
}

/** Runs attempts as local QEMU instances with runJob: one boot (or restore) per job, or a checkpoint gone on from. */
export const localExecutor: Executor = {
  name: 'local',
  async runAttempt(store, ctx) {
    const e = ctx.experiment;
    const launch = prepareLaunch(ctx);
    const ck = periodicCheckpoints(e.resources.checkpointEveryMs);
    const resumable = resumableCheckpoint(store, e.name, ctx.job.index);
    const hooks: RunHooks = {
      signal: ctx.signal, attemptOf: { experiment: e.name, job: ctx.job.index, attempt: ctx.attempt }, onControl: ck.onControl,
      // The run id first: an attempt with a host but no run is one whose logs stream into its own directory (SSH, batch nodes).
      onStart: ({ id }) => {
        ctx.onRunId(id);
        ctx.onPlaced?.(hostname());
      },
    };
    try {
      if (resumable) {
        try {
          return attemptResultOf(await restoreRun(store, resumable.id, { outDir: ctx.outDir }, hooks));
        } catch (err) {
          // Not restorable here (another QEMU build, blobs gone): the job starts over.
          if (!isVmwuError(err) || err.code === 'RUN_ACTIVE') throw err;
        }
      }
      return attemptResultOf(await runJob(store, {
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
        ...jobExtras(e.resources),
      }, hooks));
    } finally {
      ck.stop();
    }
  },
};

/** What an experiment's resources add to each job's request, whichever executor runs it (the SSH pool sends them in its request). */
export function jobExtras(r: SweepResources): Pick<JobRequest, 'cpuNeeds' | 'datasets' | 'scratchBytes' | 'rootBytes' | 'stdin'> {
  return { cpuNeeds: r.cpuNeeds, datasets: r.datasets as JobRequest['datasets'], scratchBytes: r.scratchBytes, rootBytes: r.rootBytes, stdin: r.stdin };
}

function attemptResultOf(r: RunResult): AttemptResult {
  return { runId: r.id, status: r.status, exitCode: r.exitCode, phases: r.phases, totalMs: r.totalMs, error: r.error, usage: r.usage, start: r.start };
}
