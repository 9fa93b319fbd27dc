import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { checkParamName } from '../run/command.js';
import { mayBeActive, selfIdentity } from '../store/process-identity.js';
import { reapOrphans } from '../run/reap.js';
import { writeFileDurableSync } from '../store/durable.js';
import type { Store } from '../store/store.js';
import { countJobs, expandJobs, parsePlan, type Job, type Plan, type Template } from './plan/index.js';
import { findOverlap, type Destination } from './destinations.js';
import { listFilesIn } from './files.js';
import { experimentNameTaken, getExperiment, listAttempts, listJobs, requireExperiment } from './records/reads.js';
import { resultsDir } from './records/status.js';
import { insertExperiment, requestCancel } from './records/lifecycle.js';
import { type AttemptRecord, type Experiment, type SweepResources } from './records/types.js';
import { nodesChecker } from './job-nodes.js';
import { resolveRequest, type RequestFlags } from '../request/resolve.js';
import type { ExecutorChoice } from '../request/executor.js';
import { compileJob } from './script.js';
import { isTerminalExperiment, type ExperimentState, type JobState } from './states.js';
import type { After } from './after.js';

/** Experiments in the store: a plan loaded and checked, an experiment and its jobs created from it, and one listed, shown, its results read, or cancelled. */

export interface LoadedPlan {
  plan: Plan;
  /** Absolute path of the plan file. */
  path: string;
  /** The experiment root: the plan file's directory, where root: paths and files parameters resolve. */
  root: string;
  text: string;
  seed: number;
  count: number;
  jobs(): Generator<Job>;
}

/**
 * Jobs an experiment may have unless the user raises the limit (`--max-jobs`). Each
 * job is a VM boot and a row in the store: a plan of more is most likely a typo in
 * a range, and storing 10^11 jobs would fill the disk before it failed.
 */
export const DEFAULT_MAX_JOBS = 100_000;

/** Jobs checked or stored between two turns of the event loop (and, when storing, per transaction). */
const BATCH = 2000;

function checkMaxJobs(n: number | undefined): number {
  if (n === undefined) return DEFAULT_MAX_JOBS;
  if (!Number.isSafeInteger(n) || n < 1) throw new VmwuError('BAD_VALUE', `--max-jobs (maxJobs) ${n}: expected a whole number ≥ 1`);
  return n;
}

/**
 * Reads, parses and counts a plan; `jobs()` expands lazily, so a dry run of 10,000 jobs
 * stays cheap. A plan of more than `maxJobs` jobs (default DEFAULT_MAX_JOBS) is
 * refused here, from the sizes of its parameters, before a single job is expanded.
 */
export function loadPlan(planPath: string, opts: { seed?: number; maxJobs?: number } = {}): LoadedPlan {
  const maxJobs = checkMaxJobs(opts.maxJobs);
  const path = resolve(planPath);
  if (!existsSync(path) || !statSync(path).isFile()) throw new VmwuError('NO_PLAN', `plan file ${planPath} not found`, 'give the path of a Nimrod plan file (.pln)');
  const text = readFileSync(path, 'utf8');
  const plan = parsePlan(text, planPath);
  const root = dirname(path);
  const listFiles = listFilesIn(root);
  // 2^31: an integer every tool reproducing the draws can hold.
  const seed = opts.seed ?? randomInt(0, 2 ** 31);
  const count = countJobs(plan, { listFiles, maxJobs });
  return { plan, path, root, text, seed, count, jobs: () => expandJobs(plan, { seed, listFiles, maxJobs }) };
}

/** Parameters are exported into the guest's environment: names that would break its shell are refused. */
const RESERVED_ENV = new Set(['PATH', 'HOME', 'IFS', 'PWD', 'OLDPWD', 'ENV', 'CDPATH', 'SHELL', 'PS1', 'PS2', 'PS4', 'OPTIND', 'OPTARG', 'TERM', 'USER']);

export function checkPlanParameters(plan: Plan): void {
  for (const p of plan.parameters) {
    const where = `${plan.fileName}:${p.pos.line}:${p.pos.col}: parameter ${p.name}`;
    checkParamName(p.name, where);
    if (RESERVED_ENV.has(p.name) || p.name.startsWith('LD_')) {
      throw new VmwuError('BAD_PARAM', `${where}: "${p.name}" would replace the guest shell's own ${p.name}`, 'parameters are exported as environment variables in the guest; rename it');
    }
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkExperimentName(name: string): void {
  if (!NAME.test(name)) {
    throw new VmwuError('BAD_NAME', `"${name}" is not a valid experiment name`, 'use letters, digits, ".", "_" and "-" (no "/": EXP/JOB names a job), at most 64 characters');
  }
}

function defaultName(store: Store, planPath: string): string {
  const stem = basename(planPath, extname(planPath)).replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 56) || 'sweep';
  if (!experimentNameTaken(store.db, stem)) return stem;
  for (let i = 2; ; i++) if (!experimentNameTaken(store.db, `${stem}-${i}`)) return `${stem}-${i}`;
}

export function experimentDir(store: Store, name: string): string {
  return join(store.paths.root, 'experiments', name);
}

/** A sweep: its plan and how it runs, with its request (unit or base, resources, data, stdin, executor) as given: resolved by src/request/resolve.ts. */
export interface CreateOptions extends RequestFlags {
  planPath: string;
  name?: string;
  /** Instances at once for this experiment; default derived from the host when it runs (also Slurm's array tasks at once, without --max-parallel). */
  slots?: number;
  retries?: number;
  seed?: number;
  /** Refuse a plan of more jobs than this (default DEFAULT_MAX_JOBS). */
  maxJobs?: number;
  /** Stops the creation between two batches; nothing is left stored. */
  signal?: AbortSignal;
  /** `--after`: start only once this experiment has ended so (src/sweep/after.ts). */
  after?: After;
  /** `--no-cache`: run every job, whatever the result cache holds. */
  noCache?: boolean;
}

/**
 * Plans an experiment: parses and counts the plan (refused above `maxJobs`),
 * checks every job (copy paths confined, parameter names safe, stage-out
 * destinations apart), then stores the experiment and its jobs in transactions of
 * BATCH jobs, yielding to the event loop between them, so a dashboard creating a
 * big experiment keeps answering and a signal is handled. Nothing boots;
 * `runExperiment` runs it.
 */
export async function createExperiment(store: Store, o: CreateOptions): Promise<Experiment> {
  const loaded = loadPlan(o.planPath, { seed: o.seed, maxJobs: o.maxJobs });
  checkPlanParameters(loaded.plan);
  if (loaded.count === 0) throw new VmwuError('PLAN_EMPTY', `${o.planPath}: the plan has no jobs`);
  const retries = o.retries ?? 2;
  if (!Number.isInteger(retries) || retries < 0) throw new VmwuError('BAD_VALUE', `--retries ${retries}: expected a whole number ≥ 0`);
  if (o.slots !== undefined && (!Number.isInteger(o.slots) || o.slots < 1)) throw new VmwuError('BAD_VALUE', `--slots ${o.slots}: expected a whole number ≥ 1`);
  const { target, resources, executor } = await resolveRequest(store, o, 'sweep', { slots: o.slots });
  const name = o.name ?? defaultName(store, loaded.path);
  checkExperimentName(name);
  if (o.after) checkAfter(store, o.after, name);
  const pause = () => nextTurn(o.signal, name);
  // Every job is checked before any is stored, so a bad plan stores nothing.
  const checker = jobChecker(loaded.plan);
  const nodes = nodesChecker(loaded.plan, resources);
  let k = 0;
  for (const job of loaded.jobs()) {
    checker.check(job);
    nodes.check(job);
    if (++k % BATCH === 0) await pause();
  }
  checker.finish();
  if (resources.nodesFrom) resources.nodes = nodes.most();
  if (nodes.most() > 1) checkMultiVmSweep(resources, executor);
  else if (executor.options.spread) throw new VmwuError('BAD_OPTION', '--spread places the VMs of a job of several VMs', 'give --nodes N too');
  const dir = experimentDir(store, name);
  await insertExperiment(store.db, {
    name, planPath: loaded.path, planRoot: loaded.root, planText: loaded.text, seed: loaded.seed, target, resources,
    maxRetries: retries, slots: o.slots ?? null, jobCount: loaded.count, dir, after: o.after ?? null, noCache: o.noCache ?? false,
  }, loaded.jobs(), { creator: selfIdentity(), batchSize: BATCH, pause, executor });
  const e = requireExperiment(store.db, name);
  ensureExperimentDir(e);
  return e;
}

/** What jobs of several VMs cannot have yet. */
function checkMultiVmSweep(r: SweepResources, executor: ExecutorChoice): void {
  if (r.checkpointEveryMs) throw new VmwuError('BAD_NODES', '--checkpoint-every: a job of several VMs (--nodes) cannot be checkpointed', 'its VMs hold connections to each other; drop --checkpoint-every');
  if (executor.options.allocationMs) throw new VmwuError('BAD_NODES', '--slurm-time: a job of several VMs (--nodes) cannot be checkpointed at the end of an allocation', 'drop --slurm-time: each allocation then lasts the whole job');
}


/** What `--after` names must exist already (so no chain can loop), and not be the experiment itself. */
export function checkAfter(store: Store, a: After, name?: string): void {
  if (a.experiment === name) throw new VmwuError('BAD_VALUE', `--after ${a.experiment}: an experiment cannot wait for itself`);
  if (!getExperiment(store.db, a.experiment)) {
    throw new VmwuError('NO_EXPERIMENT', `--after ${a.experiment}: no experiment of that name`, 'create the one to wait for first (vmwu sweep … --detach, or --create-only); see vmwu experiments');
  }
}

/** Lets the event loop run (requests, signals) and stops when the signal has fired. */
async function nextTurn(signal: AbortSignal | undefined, name: string): Promise<void> {
  await new Promise((r) => setImmediate(r));
  if (signal?.aborted) throw new VmwuError('INTERRUPTED', `experiment ${name}: creation interrupted; nothing was stored`, 'run the same command again to create it');
}

export interface JobChecker {
  /** Checks one job as it is expanded: its copies must stay inside the experiment. */
  check(job: Job): void;
  /** After the last job: no two jobs stage out to the same path, or one inside the other's. */
  finish(): void;
}

/**
 * Checks the jobs of a plan. Two jobs writing one file would silently lose one
 * result; one job's directory holding another's destination would have the second
 * deleted when the first is staged out. All destinations are compared at the end,
 * sorted, so this stays O(n log n) for 100,000 jobs.
 */
export function jobChecker(plan: Plan): JobChecker {
  const dests: Destination[] = [];
  const copyAt = (d: Destination) => {
    const c = plan.task.commands[d.command - 1];
    if (c?.kind !== 'copy') return `command ${d.command}`;
    const text = (t: Template) => t.parts.map((p) => (p.kind === 'lit' ? p.text : `\${${p.name}}`)).join('');
    return `\`copy ${c.from.loc}:${text(c.from.path)} ${c.to.loc}:${text(c.to.path)}\` at ${plan.fileName}:${c.pos.line}:${c.pos.col}`;
  };
  const hint = 'give each job a destination of its own that is neither inside nor around another job\'s, e.g. root:out-${jobindex}.txt or root:job-${jobindex}/';
  return {
    check(job) {
      const prog = compileJob(job.commands, `${plan.fileName}: job ${job.index}`);
      for (const t of prog.stageOut) dests.push({ path: t.to, job: job.index, command: t.n ?? 0 });
    },
    finish() {
      const pair = findOverlap(dests);
      if (!pair) return;
      const [a, b] = pair;
      if (a.path === b.path) {
        throw new VmwuError('PLAN_COPY', `${plan.fileName}: jobs ${a.job} and ${b.job} both copy to root:${a.path} (${copyAt(a)}${a.command === b.command ? '' : `; ${copyAt(b)}`}); the later would overwrite the earlier`, hint);
      }
      throw new VmwuError('PLAN_COPY',
        `${plan.fileName}: job ${a.job} copies to root:${a.path} (${copyAt(a)}) and job ${b.job} to root:${b.path}, inside it (${copyAt(b)}); staging out job ${a.job} would replace that directory and delete job ${b.job}'s output`, hint);
    },
  };
}

/** The experiment's own directory; re-created on resume if a crash came between the insert and the mkdir. */
export function ensureExperimentDir(e: Experiment): void {
  mkdirSync(join(e.dir, 'jobs'), { recursive: true });
  mkdirSync(join(e.dir, 'results'), { recursive: true });
  const copy = join(e.dir, basename(e.planPath));
  if (!existsSync(copy)) writeFileDurableSync(copy, e.planText);
}

/** Where one attempt's outputs go: `jobs/<job>/attempt-<n>/`, its job script beside it. */
export function attemptDir(e: Pick<Experiment, 'dir'>, job: number, attempt: number): string {
  return join(e.dir, 'jobs', String(job), `attempt-${attempt}`);
}

// Listing and showing experiments reads only, and lives apart so the CLI loads little for it.
export { experimentStatus, listExperimentSummaries, resultsDir } from './records/status.js';
export type { ExperimentListing, ExperimentStatus, FailureInfo, Owner, ShownState } from './records/status.js';

export interface AttemptInfo {
  attempt: number;
  runId: string | null;
  status: AttemptRecord['status'];
  exitCode: number | null;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
  totalMs: number | null;
  phases: AttemptRecord['phases'];
  outDir: string;
  /** Where it ran: this host, an SSH pool host or a Slurm node. */
  host: string | null;
  /** The batch system's id of its task (Slurm: ARRAYJOB_TASK). */
  batchId: string | null;
  /** CPU time and peak memory of its QEMU. */
  usage: AttemptRecord['usage'];
  /** It took the result cache's outputs instead of running: whose they were. */
  cachedFrom: string | null;
  /** A job of several VMs: each VM's run, machine, status, phases and usage. */
  vms: AttemptRecord['vms'];
}

export interface JobResult {
  job: number;
  params: Record<string, string>;
  status: JobState;
  exitCode: number | null;
  attempts: number;
  /** The run id of the attempt that decided the job (the last one). */
  runId: string | null;
  phases: AttemptRecord['phases'];
  totalMs: number | null;
  /** The last attempt's collected outputs (work/, stdout, stderr, run.json). */
  outDir: string | null;
  /** Absolute paths of what this job staged out into the results dir. */
  outputs: string[];
  /** Its result came from the result cache: whose it was (`EXP/JOB attempt N`). */
  cachedFrom: string | null;
  error: string | null;
  history: AttemptInfo[];
}

export function experimentResults(store: Store, name: string): JobResult[] {
  const e = requireExperiment(store.db, name);
  const byJob = new Map<number, AttemptRecord[]>();
  for (const a of listAttempts(store.db, name)) {
    const l = byJob.get(a.job);
    if (l) l.push(a);
    else byJob.set(a.job, [a]);
  }
  return listJobs(store.db, name).map((j) => {
    const hist = byJob.get(j.index) ?? [];
    const last = hist[hist.length - 1];
    return {
      job: j.index, params: j.params, status: j.state, exitCode: j.exitCode, attempts: hist.length, runId: last?.runId ?? null,
      phases: last?.phases ?? null, totalMs: last?.totalMs ?? null, outDir: last?.outDir ?? null,
      outputs: (j.outputs ?? []).map((o) => join(resultsDir(e), o)), error: j.error, cachedFrom: last?.cachedFrom ?? null,
      history: hist.map((a) => ({
        attempt: a.attempt, runId: a.runId, status: a.status, exitCode: a.exitCode, error: a.error, startedAt: a.startedAt,
        finishedAt: a.finishedAt, totalMs: a.totalMs, phases: a.phases, outDir: a.outDir, host: a.host, batchId: a.batchId, usage: a.usage, start: a.start,
        cachedFrom: a.cachedFrom, vms: a.vms,
      })),
    };
  });
}

/**
 * Cancels an experiment. A living runner is asked to stop and this waits until it
 * has stopped its VMs and settled its jobs (or died, in which case the cancel is
 * finished here). Returns the final state; a finished experiment is left as it is.
 */
export async function cancelExperiment(store: Store, name: string, opts: { signal?: AbortSignal; pollMs?: number } = {}): Promise<ExperimentState> {
  const me = selfIdentity();
  await reapOrphans(store);
  let state = requestCancel(store.db, name, me);
  while (state === 'cancelling' && !opts.signal?.aborted) {
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 200));
    const e = getExperiment(store.db, name);
    if (!e) break;
    state = e.state;
    // The runner stopped without cancelling (interrupted) or died: finish the cancel here.
    if (!isTerminalExperiment(state) && !(e.owner && mayBeActive(e.owner))) {
      await reapOrphans(store);
      state = requestCancel(store.db, name, me);
    }
  }
  return state;
}
