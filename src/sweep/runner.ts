import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isVmwuError, VmwuError } from '../errors.js';
import { describeOwner, mayBeActive, selfIdentity } from '../store/process-identity.js';
import { reapOrphans } from '../run/reap.js';
import { clearSuspend, suspendRequested } from './suspend.js';
import type { Store } from '../store/store.js';
import type { BackoffPolicy } from './backoff.js';
import { capacityRule } from './capacity.js';
import type { AttemptResult, Executor } from './driver.js';
import { attemptDir, ensureExperimentDir, resultsDir } from './experiment.js';
import { hostResources, type HostResources } from './host-resources.js';
import { findResult, keyContext, linkResult, recordResult } from '../run/result-cache.js';
import { sweepJobKey } from './job-key.js';
import { waitForAfter } from './wait.js';
import { claimExperiment, claimNext, finishAttempt, recordRunSlots, releaseExperiment, setAttemptHost, setAttemptRun, type AttemptOutcome } from './records/lifecycle.js';
import { getExperiment, getJob, jobCounts, recordedOutputs } from './records/reads.js';
import { type AttemptRecord, type Experiment, type JobRecord } from './records/types.js';
import { ingestReports } from './batch/ingest.js';
import { compileJob } from './script.js';
import { stageOut } from './staging.js';
import { isTerminalExperiment, recoverAttempt, type ExperimentState, type JobCounts } from './states.js';
import { outcomeOf, type SweepEvent } from './outcome.js';

/**
 * The sweep runner: an experiment's jobs run through an executor until each has settled, with slots,
 * retries after a backoff, stage-outs and resumption after a crash.
 */

export interface Progress {
  experiment: string;
  counts: JobCounts;
  slots: number;
  /** Jobs whose attempts are running in this process. */
  running: number[];
}

export interface RunExperimentOptions {
  /** Abort = interrupt: VMs are stopped, their jobs go back to pending, the experiment is `stopped` (resumable). */
  signal?: AbortSignal;
  onProgress?(p: Progress): void;
  onEvent?(e: SweepEvent): void;
  /** Instances at once for this run, instead of the experiment's --slots or the derived number. */
  slots?: number;
  /** Re-queue the jobs of a cancelled experiment (what `vmwu resume` does); off for the detached worker, so a cancel that beats its start sticks. */
  restartCancelled?: boolean;
  /** Where the attempts run: the caller chooses (src/executors/dispatch.ts, by the experiment's stored executor). */
  executor: Executor;
  backoff?: BackoffPolicy;
  /** How often to look for a cancel request, freed host slots and backoffs that ended. */
  pollMs?: number;
  host?: () => HostResources;
  isAlive?: (identity: string) => boolean;
  /**
   * Use the result cache (src/run/result-cache.ts): for executors whose jobs run on
   * the machine whose CPU the key names (the local one). Off for the others.
   */
  resultCache?: boolean;
}

export interface ExperimentSummary {
  name: string;
  state: ExperimentState;
  counts: JobCounts;
  dir: string;
  resultsDir: string;
}

function summary(store: Store, e: Experiment): ExperimentSummary {
  const cur = getExperiment(store.db, e.name) ?? e;
  return { name: e.name, state: cur.state, counts: jobCounts(store.db, e.name), dir: e.dir, resultsDir: resultsDir(e) };
}

/**
 * Runs (or resumes) an experiment in this process until every job has settled, it
 * is cancelled, or `signal` interrupts it. Up to N attempts run at once, each
 * holding a host-wide slot lease; failed attempts are retried after a backoff up
 * to the experiment's limit; a successful attempt's stage-outs are copied into
 * results/ before the job is marked done. Every state change is one transaction,
 * so a kill -9 at any point leaves a store that the next call resumes from:
 * attempts the dead process had finished are adopted, the others re-run.
 */
export async function runExperiment(store: Store, name: string, opts: RunExperimentOptions): Promise<ExperimentSummary> {
  // The store tells processes apart, not two runners inside one process (same owner
  // identity): the second would take the first's live attempts for a dead runner's.
  const key = `${store.paths.root}\0${name}`;
  if (runningHere.has(key)) {
    throw new VmwuError('EXPERIMENT_BUSY', `experiment ${name} is already being run by this process`, `watch it with \`vmwu status ${name}\``);
  }
  runningHere.add(key);
  try {
    return await runClaimed(store, name, opts);
  } finally {
    runningHere.delete(key);
  }
}

const runningHere = new Set<string>();

async function runClaimed(store: Store, name: string, opts: RunExperimentOptions): Promise<ExperimentSummary> {
  const db = store.db;
  const me = selfIdentity();
  const isAlive = opts.isAlive ?? mayBeActive;
  const executor = opts.executor;
  const emit = (ev: SweepEvent) => opts.onEvent?.(ev);
  await reapOrphans(store);
  const claimed = claimExperiment(db, name, me, { restartCancelled: opts.restartCancelled ?? true, isAlive });
  const e = claimed.experiment;
  // Taking the experiment up again is what ends a suspension.
  clearSuspend(db, name);
  if (isTerminalExperiment(e.state)) return summary(store, e);
  if (e.after && (await waitForAfter(store, name, e.after, me, { signal: opts.signal, onWait: (message) => emit({ type: 'info', message }) })) !== 'go') {
    return summary(store, e);
  }
  let released = false;
  const inflight = new Map<number, { ac: AbortController; done: Promise<void> }>();
  try {
    ensureExperimentDir(e);
    const program = (job: JobRecord) => compileJob(job.commands, `job ${job.index}`);
    // This process is the experiment's only runner, so it alone adds outputs from here on.
    const recorded = recordedOutputs(db, name);

    const complete = async (job: JobRecord, attempt: number, outDir: string, outcome: AttemptOutcome, key?: string): Promise<void> => {
      let o = outcome;
      if (o.status === 'succeeded') {
        try {
          const outputs = await stageOut(program(job).stageOut, join(outDir, 'work'), resultsDir(e),
            { maxBytes: e.resources.maxOutputBytes, othersOutput: (d) => recorded.conflict(job.index, d) });
          recorded.add(job.index, outputs);
          o = { ...o, outputs };
        } catch (err) {
          o = { ...o, status: 'error', error: `${isVmwuError(err) ? err.code : 'STAGE_OUT'}: ${(err as Error).message}` };
        }
      }
      const next = finishAttempt(db, { experiment: name, job: job.index, attempt, owner: me, outcome: o, maxRetries: e.maxRetries, nowMs: Date.now(), backoff: opts.backoff });
      if (key && o.status === 'succeeded' && !o.cachedFrom) await recordResult(db, { key, outDir, runId: o.runId, source: `${name}/${job.index} attempt ${attempt}` });
      emit({
        type: 'job-end', job: job.index, attempt, status: o.status, exitCode: o.exitCode, error: o.error, next: next?.state ?? job.state,
        retryInMs: next && next.notBefore ? Math.max(0, next.notBefore - Date.now()) : null, totalMs: o.totalMs, runId: o.runId,
      });
    };

    // Attempts a dead runner left behind: adopt what finished, re-queue the rest.
    for (const a of claimed.orphans) await recoverOrphan(store, e, a, complete);
    // Results of jobs run elsewhere from task files (`vmwu export-jobs` for HTCondor or PBS).
    for (const ev of (await ingestReports(store, e, { owner: me, recorded })).events) emit(ev);

    const given = opts.slots ?? e.slots ?? undefined;
    let slots: number, hostSlots: number, explain: string;
    const remote = executor.capacity ? await executor.capacity(store, e) : undefined;
    if (remote) {
      slots = given ?? remote.slots;
      hostSlots = slots;
      explain = given !== undefined ? `--slots ${given} (${remote.explain})` : remote.explain;
    } else {
      const host = (opts.host ?? hostResources)();
      // A job of several VMs takes a slot for all of them (with --nodes PARAM, as many as the job with most).
      const vms = e.resources.nodes ?? 1;
      const cap = capacityRule({ cores: host.cores, availableMemMiB: host.availableMemMiB, jobMemoryMiB: e.resources.memoryMiB * vms, jobCpus: e.resources.cpus * vms });
      slots = given ?? cap.slots;
      // An explicit --slots above the host's capacity is the user's call: let this run oversubscribe.
      hostSlots = Math.max(cap.slots, slots);
      explain = given !== undefined ? `--slots ${given} (the host rule gives ${cap.explain})` : cap.explain;
    }
    recordRunSlots(db, name, slots, explain);
    const c0 = jobCounts(db, name);
    emit({ type: 'start', experiment: name, total: e.jobCount, done: c0.succeeded + c0.failed + c0.cancelled, slots, hostSlots, explain, recovered: claimed.orphans.length });

    const progress = () => opts.onProgress?.({ experiment: name, counts: jobCounts(db, name), slots, running: [...inflight.keys()] });
    let stop: 'cancel' | 'interrupt' | undefined;
    // An attempt that ends while the loop is busy (not yet asleep) must still cut the next sleep short.
    let kicked = false;
    let kick: (() => void) | null = null;
    const wake = () => {
      kicked = true;
      kick?.();
    };
    const onAbort = () => wake();
    opts.signal?.addEventListener('abort', onAbort);

    // VMWU_RESULT_CACHE=off turns the cache off for every sweep (the test suite, which counts real runs).
    const keys = opts.resultCache === true && !e.noCache && process.env.VMWU_RESULT_CACHE !== 'off' ? keyContext() : undefined;
    const start = (job: JobRecord, attempt: number, outDir: string) => {
      const ac = new AbortController();
      emit({ type: 'job-start', job: job.index, attempt });
      const done = (async () => {
        let outcome: AttemptOutcome | undefined;
        let key: string | undefined;
        try {
          if (keys) {
            key = await sweepJobKey(e, job, keys);
            const hit = await findResult(db, key);
            if (hit && 'damaged' in hit) emit({ type: 'info', message: `job ${job.index}: ${hit.damaged}; it runs` });
            else if (hit) {
              linkResult(hit.outDir, outDir);
              emit({ type: 'info', message: `job ${job.index}: the result cache has it: outputs of ${hit.source}` });
              outcome = { status: 'succeeded', runId: hit.runId, exitCode: 0, error: null, phases: null, totalMs: 0, cachedFrom: hit.source };
            }
          }
          outcome ??= outcomeOf(await executor.runAttempt(store, {
            experiment: e, job, attempt, outDir, signal: ac.signal, slots,
            onRunId: (id) => setAttemptRun(db, name, job.index, attempt, id),
            onPlaced: (h) => setAttemptHost(db, name, job.index, attempt, h),
          }), outDir);
        } catch (err) {
          outcome = { status: 'error', runId: null, exitCode: null, error: `${isVmwuError(err) ? err.code : 'INTERNAL'}: ${(err as Error).message}`, phases: null, totalMs: null };
        }
        // Stopped by us, not by its own fault: not a failure, not counted against retries.
        if (ac.signal.aborted && outcome.status !== 'succeeded') {
          outcome = { ...outcome, status: stop === 'cancel' ? 'cancelled' : 'interrupted', error: stop === 'cancel' ? 'cancelled' : 'interrupted' };
        }
        await complete(job, attempt, outDir, outcome, key);
      })().catch((err: unknown) => {
        emit({ type: 'warning', message: `job ${job.index} attempt ${attempt}: ${(err as Error).message}` });
      }).finally(() => {
        inflight.delete(job.index);
        progress();
        wake();
      });
      inflight.set(job.index, { ac, done });
    };

    try {
      progress();
      for (;;) {
        if (opts.signal?.aborted) stop ??= 'interrupt';
        if (!stop && getExperiment(db, name)?.state === 'cancelling') stop = 'cancel';
        if (stop) break;
        // Suspended: start nothing more; the running jobs are being checkpointed and stopped.
        const suspending = suspendRequested(db, name);
        if (suspending && inflight.size === 0) {
          stop = 'interrupt';
          break;
        }
        let nextAt: number | null = null;
        while (!suspending && inflight.size < slots) {
          const c = claimNext(db, {
            experiment: name, owner: me, nowMs: Date.now(), perExperiment: slots, hostSlots, memoryMiB: e.resources.memoryMiB,
            cpus: e.resources.cpus, outDir: (j, n) => attemptDir(e, j, n), isAlive, lease: !remote,
          });
          if (c.kind === 'idle') nextAt = c.nextAt;
          if (c.kind !== 'claimed') break;
          start(c.job, c.attempt, c.outDir);
          progress();
        }
        if (inflight.size === 0 && jobCounts(db, name).pending === 0) break;
        const poll = opts.pollMs ?? 500;
        const delay = Math.max(5, nextAt !== null && inflight.size < slots ? Math.min(poll, nextAt - Date.now()) : poll);
        if (!kicked) {
          await new Promise<void>((res) => {
            const t = setTimeout(res, delay);
            kick = () => {
              clearTimeout(t);
              res();
            };
          });
        }
        kicked = false;
        kick = null;
      }
      for (const f of inflight.values()) f.ac.abort();
      await Promise.all([...inflight.values()].map((f) => f.done));
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    const after = releaseExperiment(db, name, me, stop ?? 'done');
    released = true;
    emit({ type: 'end', state: after.state });
    return summary(store, e);
  } finally {
    if (!released) {
      // Unexpected error: stop our VMs and leave the experiment resumable.
      for (const f of inflight.values()) f.ac.abort();
      await Promise.allSettled([...inflight.values()].map((f) => f.done));
      releaseExperiment(db, name, me, 'interrupt');
    }
    await executor.close?.();
  }
}

type Complete = (job: JobRecord, attempt: number, outDir: string, outcome: AttemptOutcome) => Promise<void>;

async function recoverOrphan(store: Store, e: Experiment, a: AttemptRecord, complete: Complete): Promise<void> {
  let result: { id?: string; status: string; exitCode?: number | null; phases?: AttemptOutcome['phases']; totalMs?: number; error?: { code: string; message: string } } | undefined;
  const runJson = join(a.outDir, 'run.json');
  if (existsSync(runJson)) {
    try {
      result = JSON.parse(readFileSync(runJson, 'utf8')) as typeof result;
    } catch {
      result = undefined;
    }
  }
  if (result && a.runId && result.id !== a.runId) result = undefined;
  const verdict = recoverAttempt(result && { status: result.status, errorCode: result.error?.code });
  const job = getJob(store.db, e.name, a.job);
  if (!job) return;
  if (verdict === 'interrupted') {
    await complete(job, a.attempt, a.outDir, {
      status: 'interrupted', runId: a.runId, exitCode: null, phases: null, totalMs: null,
      error: `lost with its runner (${describeOwner(a.owner)} died)`,
    });
    return;
  }
  const r = result!;
  const attemptResult: AttemptResult = {
    runId: r.id ?? a.runId, status: verdict.adopt as AttemptResult['status'], exitCode: r.exitCode ?? null,
    phases: r.phases ?? null, totalMs: r.totalMs ?? null, error: r.error,
  };
  await complete(job, a.attempt, a.outDir, outcomeOf(attemptResult, a.outDir));
}
