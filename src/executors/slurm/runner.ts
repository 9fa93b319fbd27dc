import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VmwuError } from '../../errors.js';
import { packageRoot } from '../../paths.js';
import { mayBeActive, describeOwner, selfIdentity } from '../../store/process-identity.js';
import { requireBase } from '../../store/bases.js';
import type { Store } from '../../store/store.js';
import { attemptDir, ensureExperimentDir, resultsDir } from '../../sweep/experiment.js';
import { ingestReports } from '../../sweep/batch/ingest.js';
import { finishAttempt, recordStartedAttempt, releaseExperiment, setAttemptUsage, type AttemptOutcome } from '../../sweep/records/lifecycle.js';
import { getAttempt, getExperiment, getJob, jobCounts, requireExperiment } from '../../sweep/records/reads.js';
import { type Experiment } from '../../sweep/records/types.js';
import type { SweepEvent } from '../../sweep/outcome.js';
import type { ExperimentSummary, RunExperimentOptions } from '../../sweep/runner.js';
import { taskFileFor, writeFileAtomic } from '../../sweep/batch/task-files.js';
import { getExecutor } from '../../sweep/executor-choice.js';
import { addSubmission, listSubmissions, nextRound, openTasks, settleTasks, type OpenTask, type SentTask } from '../records.js';
import { ENDED_STATES, LOST_STATES, type TaskAccounting } from './accounting.js';
import { clusterConfig, queuedTasks, sacctTasks, sbatch, scancel, type ClusterConfig } from './commands.js';
import { batchScript, chunkJobs, slurmResources } from './script.js';
import { type SlurmOptions } from '../../request/executor.js';
import { syncDirSync } from '../../store/durable.js';

const now = () => new Date().toISOString();

export function slurmDir(e: Experiment): string {
  return join(e.dir, 'slurm');
}

/** How long a task may be gone from the queue before its result file must be visible (NFS caches directory listings). */
function lostGraceMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.VMWU_SLURM_GRACE_MS);
  return Number.isFinite(v) && v >= 0 ? v : 30_000;
}

/** The last non-empty line of a task's Slurm output file: the batch script's or slurmstepd's reason. */
function taskOutputTail(e: Experiment, key: string): { file: string; last: string | undefined } {
  const file = join(slurmDir(e), `${key}.out`);
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // never written: the task did not start
  }
  return { file, last: text.trimEnd().split('\n').filter((l) => l.trim()).pop()?.slice(0, 300) };
}

/**
 * What a task that left the queue without a result means for its job. Slurm's
 * accounting, when the cluster keeps it, says why: a node that failed (or a
 * preemption) loses the attempt through no fault of the job, which goes back to
 * pending; a time limit, an out-of-memory kill or a failure counts against its
 * retries. Without accounting, the task's output file is the witness: a task that
 * never started (the node check failed) or that slurmstepd killed counts; one
 * that started and vanished without a word went with its node.
 */
export function lostOutcome(key: string, a: TaskAccounting | undefined, started: boolean, tail: { file: string; last: string | undefined }, cancelling: boolean): AttemptOutcome {
  const base = { runId: null, exitCode: null, phases: null, totalMs: null, usage: null };
  if (cancelling) return { ...base, status: 'cancelled', error: 'cancelled' };
  const said = tail.last ? `: ${tail.last}` : '';
  if (a?.state && LOST_STATES.has(a.state)) {
    return { ...base, status: 'interrupted', error: `lost: Slurm task ${key} ended ${a.state}${a.node ? ` on node ${a.node}` : ''}` };
  }
  if (a?.state) return { ...base, status: 'error', error: `Slurm task ${key} ended ${a.state} without a result${said} (${tail.file})` };
  if (started && !/slurmstepd|time limit|oom|out of memory|cancelled/i.test(tail.last ?? '')) {
    return { ...base, status: 'interrupted', error: `lost: Slurm task ${key} left the queue without a result (its node failed?)` };
  }
  return { ...base, status: 'error', error: `Slurm task ${key} ended without a result${said} (${tail.file})` };
}

export interface SlurmRunOptions extends Pick<RunExperimentOptions, 'signal' | 'onEvent' | 'restartCancelled' | 'pollMs'> {
  /** Where the nodes find node and vmwu (default: this process's). */
  node?: string;
  vmwuJs?: string;
  /**
   * How often to ask squeue which tasks are still queued (default 10 s): only a
   * task that vanishes without a report needs it. Reports are read every poll.
   */
  queueEveryMs?: number;
  /** How often to ask sacct for the resource use of finished tasks (default 30 s, and once at the end). */
  accountingEveryMs?: number;
}

/** Makes this process the experiment's submitter; refused while another process may be it. */
function claimSubmitter(store: Store, name: string, me: string, restartCancelled: boolean): Experiment {
  const db = store.db;
  const tx = db.transaction(() => {
    const e = requireExperiment(db, name);
    if (e.owner && e.owner !== me && mayBeActive(e.owner)) {
      throw new VmwuError('EXPERIMENT_BUSY', `experiment ${name} is being run by ${describeOwner(e.owner)}`, `watch it with \`vmwu status ${name}\``);
    }
    if (e.state === 'succeeded' || e.state === 'failed') return e;
    if (e.state === 'cancelled') {
      if (!restartCancelled) return e;
      db.prepare(`UPDATE experiment_jobs SET state = 'pending', owner = NULL, not_before = 0, finished_at = NULL WHERE experiment = ? AND state = 'cancelled'`).run(name);
    }
    // Jobs an earlier submitter moved to running are settled by this one now.
    db.prepare(`UPDATE experiment_jobs SET owner = ? WHERE experiment = ? AND state = 'running'`).run(me, name);
    db.prepare(`UPDATE experiments SET state = 'running', owner = ?, finished_at = NULL, updated_at = ? WHERE name = ?`).run(me, now(), name);
    return requireExperiment(db, name);
  });
  return tx.immediate();
}

/**
 * Settles the tasks of a cancelled experiment that left no result: an attempt that
 * had started is cancelled; a task that never started leaves no attempt.
 */
export function cancelOpenTasks(store: Store, name: string, me: string): void {
  const db = store.db;
  db.transaction(() => {
    const open = openTasks(db, name);
    for (const x of open) {
      if (getAttempt(db, name, x.job, x.attempt)?.status !== 'running') continue;
      finishAttempt(db, {
        experiment: name, job: x.job, attempt: x.attempt, owner: me, maxRetries: 0, nowMs: Date.now(),
        outcome: { status: 'cancelled', error: 'cancelled', runId: null, exitCode: null, phases: null, totalMs: null },
      });
    }
    settleTasks(db, name, open);
  }).immediate();
}

/** scancel every array of the experiment still in the queue, and wait until their tasks have left it. */
export async function cancelArrays(store: Store, name: string, pollMs = 300): Promise<string[]> {
  const ids = [...new Set(openTasks(store.db, name).map((t) => t.slurmJobId))];
  for (const id of ids) await scancel(id);
  for (;;) {
    const q = await queuedTasks(ids);
    if (q && ![...q.values()].some((t) => !ENDED_STATES.has(t.state))) break;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return ids;
}

/**
 * Runs (or re-attaches to) an experiment on Slurm. This process is the only
 * writer of the experiment's records; the nodes never open the database.
 *
 * Each poll it ingests the reports the tasks left (src/sweep/ingest.ts), asks
 * squeue once which of its tasks are still queued, settles those that left the
 * queue without a result (lostOutcome), and sends the jobs that are pending and
 * not out as new arrays: a task file per job attempt, one `sbatch --array` per
 * chunk of MaxArraySize. Nothing here costs per job per poll: squeue is one
 * call whatever the number of tasks, reports arrive in batches, and pending jobs
 * are looked up only when some became pending. Resource use comes from sacct
 * when the cluster keeps accounting (else from the node's /proc). Interrupting
 * the submitter leaves the arrays running: `vmwu resume` re-attaches; `vmwu
 * cancel` scancels them.
 */
export async function runSlurmExperiment(store: Store, name: string, o: SlurmRunOptions = {}): Promise<ExperimentSummary> {
  const db = store.db;
  const me = selfIdentity();
  const emit = (ev: SweepEvent) => o.onEvent?.(ev);
  const e = claimSubmitter(store, name, me, o.restartCancelled ?? true);
  const summary = (): ExperimentSummary => ({ name, state: getExperiment(db, name)!.state, counts: jobCounts(db, name), dir: e.dir, resultsDir: resultsDir(e) });
  if (e.owner !== me) return summary();
  const so = getExecutor(db, name).options as SlurmOptions;
  const base = requireBase(db, e.target.base);
  const grace = lostGraceMs();
  const pollMs = o.pollMs ?? 1000;
  let how: 'done' | 'cancel' | 'interrupt' = 'interrupt';
  let cluster: ClusterConfig | undefined;
  const config = async () => (cluster ??= await clusterConfig());
  /** When a task was first seen gone from the queue, by "ARRAYJOB_TASK". */
  const goneSince = new Map<string, number>();
  /** Finished attempts whose accounting is still to come from sacct: key → job, attempt, deadline. */
  const awaiting = new Map<string, { job: number; attempt: number; until: number }>();
  let lastQueue = 0;
  let lastAccounting = 0;
  // Pending jobs are looked up when some may have become pending (or a backoff ended), not every poll.
  let lookForPending = true;
  let nextBackoff = Infinity;

  const key = (t: Pick<OpenTask, 'slurmJobId' | 'taskId'>) => `${t.slurmJobId}_${t.taskId}`;
  /**
   * The tasks sent out and not settled, by "ARRAYJOB_TASK" (and job/attempt → that
   * key): read from the store once, then kept here as tasks are sent and settled,
   * so that a poll never reads all of them from the database.
   */
  const open = new Map<string, OpenTask>();
  const keyOf = new Map<string, string>();
  const track = (t: OpenTask) => {
    open.set(key(t), t);
    keyOf.set(`${t.job}/${t.attempt}`, key(t));
  };
  const untrack = (job: number, attempt: number) => {
    const k = keyOf.get(`${job}/${attempt}`);
    keyOf.delete(`${job}/${attempt}`);
    if (k) {
      open.delete(k);
      goneSince.delete(k);
    }
    return k;
  };
  for (const t of openTasks(db, name)) track(t);

  const submit = async (): Promise<void> => {
    const t = Date.now();
    const rows = db.prepare(`SELECT idx, not_before FROM experiment_jobs j WHERE experiment = ? AND state = 'pending'
      AND NOT EXISTS (SELECT 1 FROM slurm_tasks t WHERE t.experiment = j.experiment AND t.job = j.idx AND t.settled = 0) ORDER BY idx`).all(name) as { idx: number; not_before: number }[];
    const ready = rows.filter((r) => r.not_before <= t).map((r) => r.idx);
    nextBackoff = Math.min(Infinity, ...rows.filter((r) => r.not_before > t).map((r) => r.not_before));
    lookForPending = false;
    if (!ready.length) return;
    const dir = slurmDir(e);
    mkdirSync(dir, { recursive: true });
    const res = slurmResources(e.resources, so.allocationMs);
    for (const chunk of chunkJobs(ready, (await config()).maxArraySize)) {
      const round = nextRound(db, name);
      const tasksDir = join(dir, `round-${round}`);
      mkdirSync(tasksDir, { recursive: true });
      const sent: SentTask[] = [];
      for (const [k, idx] of chunk.jobs.entries()) {
        const job = getJob(db, name, idx)!;
        const attempt = job.attempts + 1;
        try {
          writeFileAtomic(join(tasksDir, `${idx}.json`), JSON.stringify(taskFileFor(store, e, base, job, attempt)), { dirSync: false });
          sent.push({ job: idx, attempt, taskId: chunk.taskIds[k]! });
        } catch (err) {
          // A job that cannot be sent (a staged-in file vanished) fails its attempt here, with the reason.
          settleAttempt(idx, attempt, null, { runId: null, exitCode: null, phases: null, totalMs: null, usage: null, status: 'error', error: (err as Error).message });
        }
      }
      if (!sent.length) continue;
      // One fsync for the round's directory, not one per task file.
      syncDirSync(tasksDir);
      const sentChunk = { offset: chunk.offset, taskIds: sent.map((s) => s.taskId), jobs: sent.map((s) => s.job) };
      const scriptPath = join(dir, `round-${round}.sbatch`);
      writeFileAtomic(scriptPath, batchScript({
        experiment: name, round, chunk: sentChunk, resources: res, options: so, tasksDir,
        node: o.node ?? process.execPath, vmwuJs: o.vmwuJs ?? join(packageRoot, 'bin', 'vmwu.js'), logDir: dir,
      }));
      const id = await sbatch(scriptPath, e.dir);
      const submission = addSubmission(db, { experiment: name, round, slurmJobId: id, scriptPath, submittedAt: now() }, sent);
      for (const s of sent) track({ ...s, submission, slurmJobId: id });
      emit({ type: 'info', message: `submitted Slurm array ${id} (round ${round}, ${sent.length} jobs): ${scriptPath}` });
    }
  };

  /** Closes an attempt the submitter settles itself (lost, cancelled, unsendable): recorded, job moved on, task settled. */
  function settleAttempt(job: number, attempt: number, host: string | null, outcome: AttemptOutcome, batchId: string | null = null): void {
    const at = now();
    const next = db.transaction(() => {
      recordStartedAttempt(db, { experiment: name, job, attempt, owner: me, runner: me, host, runId: null, batchId, outDir: attemptDir(e, job, attempt), at });
      const n = finishAttempt(db, { experiment: name, job, attempt, owner: me, outcome, maxRetries: e.maxRetries, nowMs: Date.now() });
      settleTasks(db, name, [{ job, attempt }]);
      return n;
    }).immediate();
    untrack(job, attempt);
    if (next?.state === 'pending') lookForPending = true;
    emit({
      type: 'job-end', job, attempt, status: outcome.status, exitCode: null, error: outcome.error, next: next?.state ?? getJob(db, name, job)?.state ?? 'pending',
      retryInMs: next && next.notBefore ? Math.max(0, next.notBefore - Date.now()) : null, totalMs: null, runId: null,
    });
  }

  const ingest = async (): Promise<void> => {
    const r = await ingestReports(store, e, { owner: me });
    if (r.finished.length) {
      const done = r.finished.map((f) => ({ job: f.job, attempt: f.attempt }));
      settleTasks(db, name, done);
      for (const f of done) {
        const k = untrack(f.job, f.attempt);
        if (k && (await config()).accounting) awaiting.set(k, { ...f, until: Date.now() + 120_000 });
      }
    }
    for (const ev of r.events) {
      if (ev.type === 'job-end' && ev.next === 'pending') lookForPending = true;
      emit(ev);
    }
  };

  /** Tasks that left the queue without a result, once the grace for their report has passed. */
  const settleGone = async (): Promise<void> => {
    const t = Date.now();
    const gone = [...goneSince].filter(([, since]) => t - since >= grace).map(([k]) => open.get(k)).filter((x): x is OpenTask => Boolean(x));
    if (!gone.length) return;
    const acct = (await config()).accounting ? await sacctTasks([...new Set(gone.map((x) => x.slurmJobId))]) : undefined;
    for (const x of gone) {
      const k = key(x);
      const a = acct?.get(k);
      const attempt = db.prepare('SELECT host FROM attempts WHERE experiment = ? AND job = ? AND attempt = ?').get(name, x.job, x.attempt) as { host: string | null } | undefined;
      settleAttempt(x.job, x.attempt, a?.node || attempt?.host || null, lostOutcome(k, a, Boolean(attempt), taskOutputTail(e, k), false), k);
    }
  };

  /** One squeue call for every task out, whatever their number. */
  const watchQueue = async (): Promise<void> => {
    const q = await queuedTasks([...new Set([...open.values()].map((t) => t.slurmJobId))]);
    if (!q) {
      emit({ type: 'warning', message: 'squeue failed; asking again' });
      return;
    }
    const t = Date.now();
    for (const k of open.keys()) {
      const s = q.get(k);
      if (s && !ENDED_STATES.has(s.state)) goneSince.delete(k);
      else if (!goneSince.has(k)) goneSince.set(k, t);
    }
  };

  const account = async (force = false): Promise<void> => {
    if (!awaiting.size || (!force && Date.now() - lastAccounting < (o.accountingEveryMs ?? 30_000))) return;
    lastAccounting = Date.now();
    const ids = [...new Set([...awaiting.keys()].map((k) => k.split('_')[0]!))];
    const acct = await sacctTasks(ids);
    if (!acct) return;
    for (const [k, w] of awaiting) {
      const a = acct.get(k);
      if (a && a.cpuMs !== undefined && a.maxRssKiB !== undefined && ENDED_STATES.has(a.state)) {
        setAttemptUsage(db, name, w.job, w.attempt, { cpuMs: a.cpuMs, maxRssKiB: a.maxRssKiB, source: 'sacct' });
        awaiting.delete(k);
      } else if (Date.now() > w.until) {
        awaiting.delete(k);
      }
    }
  };

  try {
    ensureExperimentDir(e);
    const attached = listSubmissions(db, name, true);
    const c0 = jobCounts(db, name);
    emit({
      type: 'start', experiment: name, total: e.jobCount, done: c0.succeeded + c0.failed + c0.cancelled, slots: so.maxParallel ?? 0, hostSlots: 0,
      explain: `Slurm arrays${so.maxParallel ? ` of at most ${so.maxParallel} tasks at once` : ''}${so.partition ? ` on partition ${so.partition}` : ''}${attached.length ? `; re-attached to ${attached.map((s) => s.slurmJobId).join(', ')}` : ''}`,
      recovered: 0,
    });
    // Attempts of an earlier submitter whose accounting never came.
    if ((await config()).accounting) {
      for (const a of db.prepare(`SELECT job, attempt, batch_id FROM attempts WHERE experiment = ? AND batch_id IS NOT NULL AND status != 'running'
        AND (usage_source IS NULL OR usage_source != 'sacct')`).all(name) as { job: number; attempt: number; batch_id: string }[]) {
        awaiting.set(a.batch_id, { job: a.job, attempt: a.attempt, until: Date.now() + 120_000 });
      }
    }
    for (;;) {
      await ingest();
      if (o.signal?.aborted) break;
      const cancelling = (db.prepare('SELECT state FROM experiments WHERE name = ?').get(name) as { state: string } | undefined)?.state === 'cancelling';
      if (cancelling) {
        await cancelArrays(store, name);
        // Tasks stopped by scancel report `done` (interrupted, so cancelled) as they go: take those, then settle the rest.
        await ingest();
        cancelOpenTasks(store, name, me);
        how = 'cancel';
        break;
      }
      if (open.size && Date.now() - lastQueue >= (o.queueEveryMs ?? 10_000)) {
        lastQueue = Date.now();
        await watchQueue();
      }
      await settleGone();
      if (lookForPending || Date.now() >= nextBackoff) await submit();
      await account();
      if (!open.size && !db.prepare(`SELECT 1 FROM experiment_jobs WHERE experiment = ? AND state = 'pending' LIMIT 1`).get(name)) {
        how = 'done';
        break;
      }
      await new Promise((r) => setTimeout(r, pollMs));
    }
    // Accounting lags the end of a task by a few seconds: wait for it, briefly.
    for (let i = 0; how === 'done' && awaiting.size && i < 10; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      await account(true);
    }
  } catch (err) {
    releaseExperiment(db, name, me, 'interrupt');
    throw err;
  }
  const after = releaseExperiment(db, name, me, how);
  emit({ type: 'end', state: after.state });
  return summary();
}
