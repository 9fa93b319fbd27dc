import { join } from 'node:path';
import { VmwuError } from '../../errors.js';
import { packageRoot } from '../../paths.js';
import type { SlurmOptions } from '../../request/executor.js';
import { requireBase, type Base } from '../../store/bases.js';
import type { Db } from '../../store/db.js';
import { describeOwner, mayBeActive, selfIdentity } from '../../store/process-identity.js';
import type { Store } from '../../store/store.js';
import { ingestReports } from '../../sweep/batch/ingest.js';
import { getExecutor } from '../../sweep/executor-choice.js';
import { attemptDir, ensureExperimentDir, resultsDir } from '../../sweep/experiment.js';
import type { SweepEvent } from '../../sweep/outcome.js';
import { finishAttempt, markWaiting, recordStartedAttempt, releaseExperiment, requestCancelBecause, setAttemptUsage, type AttemptOutcome } from '../../sweep/records/lifecycle.js';
import { getExperiment, getJob, jobCounts, requireExperiment } from '../../sweep/records/reads.js';
import type { Experiment } from '../../sweep/records/types.js';
import type { ExperimentSummary, RunExperimentOptions } from '../../sweep/runner.js';
import { afterVerdictNow, waitForAfter } from '../../sweep/wait.js';
import { slurmDependency } from './after.js';
import { cancelArrays, cancelOpenTasks } from './cancel.js';
import { clusterConfig, liftDependency, queuedTasks, sacctTasks, type ClusterConfig } from './commands.js';
import { lostAttempts, lostGraceMs } from './lost-tasks.js';
import { OpenTasks } from './open-tasks.js';
import { pendingJobs, submitRounds } from './rounds.js';
import { listSubmissions, openTasks, settleTasks } from './submissions.js';
import { AwaitedUsage, unaccountedAttempts } from './usage.js';

/** The Slurm submitter: runs (or re-attaches to) an experiment on Slurm, polling what its tasks report and sending its pending jobs as arrays. */

const now = () => new Date().toISOString();

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
 * Runs (or re-attaches to) an experiment on Slurm. This process is the only
 * writer of the experiment's records; the nodes never open the database.
 *
 * Each poll it ingests the reports the tasks left (src/sweep/batch/ingest.ts), asks
 * squeue once which of its tasks are still queued, settles those that left the
 * queue without a result (lost-tasks.ts), and sends the jobs that are pending and
 * not out as new arrays (rounds.ts). Nothing here costs per job per poll: squeue
 * is one call whatever the number of tasks, reports arrive in batches, and
 * pending jobs are looked up only when some became pending. Resource use comes
 * from sacct when the cluster keeps accounting (usage.ts; else from the node's
 * /proc). Interrupting the submitter leaves the arrays running: `vmwu resume`
 * re-attaches; `vmwu cancel` scancels them.
 */
export async function runSlurmExperiment(store: Store, name: string, o: SlurmRunOptions = {}): Promise<ExperimentSummary> {
  const db = store.db;
  const me = selfIdentity();
  const e = claimSubmitter(store, name, me, o.restartCancelled ?? true);
  const summary = (): ExperimentSummary => ({ name, state: getExperiment(db, name)!.state, counts: jobCounts(db, name), dir: e.dir, resultsDir: resultsDir(e) });
  if (e.owner !== me) return summary();
  let dependency: string | undefined;
  if (e.after) {
    const after = e.after;
    const w = await waitForAfter(store, name, after, me, {
      signal: o.signal, onWait: (message) => o.onEvent?.({ type: 'info', message }),
      handOver: () => (dependency = slurmDependency(db, after) ?? undefined) !== undefined,
    });
    if (w === 'cancelled' || w === 'interrupted') return summary();
  }
  const submitter = new Submitter(store, e, me, o, dependency);
  let how: 'done' | 'cancel' | 'interrupt';
  try {
    how = await submitter.run();
  } catch (err) {
    releaseExperiment(db, name, me, 'interrupt');
    throw err;
  }
  const after = releaseExperiment(db, name, me, how);
  o.onEvent?.({ type: 'end', state: after.state });
  return summary();
}

/** One submitter's state between polls: the tasks out, the usage awaited, and when pending jobs are worth looking up. */
class Submitter {
  private readonly db: Db;
  private readonly so: SlurmOptions;
  private readonly base: Base;
  private readonly grace = lostGraceMs();
  private cluster: ClusterConfig | undefined;
  private readonly tasks: OpenTasks;
  private readonly usage: AwaitedUsage;
  private lastQueue = 0;
  // Pending jobs are looked up when some may have become pending (or a backoff ended), not every poll.
  private lookForPending = true;
  private nextBackoff = Infinity;

  /**
   * @param dependency `--after` handed to Slurm (src/executors/slurm/after.ts): every array
   *   goes out with it until the experiment it follows ends, which this submitter watches.
   */
  constructor(private readonly store: Store, private readonly e: Experiment, private readonly me: string, private readonly o: SlurmRunOptions,
    private dependency?: string) {
    this.db = store.db;
    this.so = getExecutor(this.db, e.name).options as SlurmOptions;
    this.base = requireBase(this.db, e.target.base);
    this.tasks = new OpenTasks(openTasks(this.db, e.name));
    this.usage = new AwaitedUsage({
      everyMs: o.accountingEveryMs ?? 30_000, sacct: sacctTasks,
      record: (job, attempt, u) => setAttemptUsage(this.db, e.name, job, attempt, { ...u, source: 'sacct' }),
    });
  }

  private emit(ev: SweepEvent): void {
    this.o.onEvent?.(ev);
  }

  private async config(): Promise<ClusterConfig> {
    return (this.cluster ??= await clusterConfig());
  }

  /** Polls until every job has settled, the experiment is cancelled or the submitter interrupted; says which. */
  async run(): Promise<'done' | 'cancel' | 'interrupt'> {
    const { db, e, so } = this;
    const name = e.name;
    ensureExperimentDir(e);
    const attached = listSubmissions(db, name, true);
    const c0 = jobCounts(db, name);
    this.emit({
      type: 'start', experiment: name, total: e.jobCount, done: c0.succeeded + c0.failed + c0.cancelled, slots: so.maxParallel ?? 0, hostSlots: 0,
      explain: `Slurm arrays${so.maxParallel ? ` of at most ${so.maxParallel} tasks at once` : ''}${so.partition ? ` on partition ${so.partition}` : ''}${attached.length ? `; re-attached to ${attached.map((s) => s.slurmJobId).join(', ')}` : ''}`,
      recovered: 0,
    });
    if ((await this.config()).accounting) for (const a of unaccountedAttempts(db, name)) this.usage.expect(a.batch_id, a.job, a.attempt);
    let how: 'done' | 'cancel' | 'interrupt' = 'interrupt';
    for (;;) {
      await this.ingest();
      if (this.o.signal?.aborted) break;
      if (this.dependency) await this.watchAfter();
      if ((db.prepare('SELECT state FROM experiments WHERE name = ?').get(name) as { state: string } | undefined)?.state === 'cancelling') {
        await cancelArrays(this.store, name);
        // Tasks stopped by scancel report `done` (interrupted, so cancelled) as they go: take those, then settle the rest.
        await this.ingest();
        cancelOpenTasks(this.store, name, this.me);
        how = 'cancel';
        break;
      }
      if (this.tasks.size && Date.now() - this.lastQueue >= (this.o.queueEveryMs ?? 10_000)) {
        this.lastQueue = Date.now();
        await this.watchQueue();
      }
      await this.settleGone();
      if (this.lookForPending || Date.now() >= this.nextBackoff) await this.submit();
      await this.usage.collect();
      if (!this.tasks.size && !db.prepare(`SELECT 1 FROM experiment_jobs WHERE experiment = ? AND state = 'pending' LIMIT 1`).get(name)) {
        how = 'done';
        break;
      }
      await new Promise((r) => setTimeout(r, this.o.pollMs ?? 1000));
    }
    // Accounting lags the end of a task by a few seconds: wait for it, briefly.
    for (let i = 0; how === 'done' && this.usage.size && i < 10; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      await this.usage.collect(true);
    }
    return how;
  }

  /**
   * The experiment this one goes after, while Slurm holds the wait: once it succeeded
   * (or ended, for `:finished`), the dependency is lifted from the arrays still
   * pending (a retried task of it leaves afterok unmet for ever); if it cannot any
   * more, this experiment is cancelled with the reason (its arrays scancelled).
   */
  private async watchAfter(): Promise<void> {
    const { db, e } = this;
    const v = afterVerdictNow(this.store, e.after!);
    if (v === 'wait') return;
    this.dependency = undefined;
    if (v === 'go') {
      markWaiting(db, e.name, false);
      for (const s of listSubmissions(db, e.name, true)) {
        // Not this submitter's end: an array Slurm cannot update now is most likely one it is already starting.
        await liftDependency(s.slurmJobId).catch((err: Error) => this.emit({ type: 'info', message: `${err.message} (the array is left to Slurm)` }));
      }
      this.emit({ type: 'info', message: `experiment ${e.after!.experiment} ended: the arrays no longer wait for it` });
      return;
    }
    requestCancelBecause(db, e.name, `cancelled: ${v.cancel}`);
    this.emit({ type: 'info', message: `cancelled: ${v.cancel}` });
  }

  /** The reports the tasks left: their attempts settled by the batch ingest, their tasks no longer out. */
  private async ingest(): Promise<void> {
    const r = await ingestReports(this.store, this.e, { owner: this.me });
    if (r.finished.length) {
      const done = r.finished.map((f) => ({ job: f.job, attempt: f.attempt }));
      settleTasks(this.db, this.e.name, done);
      for (const f of done) {
        const k = this.tasks.untrack(f.job, f.attempt);
        if (k && (await this.config()).accounting) this.usage.expect(k, f.job, f.attempt);
      }
    }
    for (const ev of r.events) {
      if (ev.type === 'job-end' && ev.next === 'pending') this.lookForPending = true;
      this.emit(ev);
    }
  }

  /** One squeue call for every task out, whatever their number. */
  private async watchQueue(): Promise<void> {
    const q = await queuedTasks(this.tasks.arrays());
    if (!q) {
      this.emit({ type: 'warning', message: 'squeue failed; asking again' });
      return;
    }
    this.tasks.observeQueue(q, Date.now());
  }

  /** Tasks that left the queue without a result, once the grace for their report has passed. */
  private async settleGone(): Promise<void> {
    const gone = this.tasks.goneFor(this.grace, Date.now());
    if (!gone.length) return;
    const acct = (await this.config()).accounting ? await sacctTasks([...new Set(gone.map((x) => x.slurmJobId))]) : undefined;
    for (const x of lostAttempts(this.db, this.e, gone, acct)) this.settle(x.task.job, x.task.attempt, x.host, x.outcome, x.key);
  }

  private async submit(): Promise<void> {
    const { ready, nextBackoff } = pendingJobs(this.db, this.e.name, Date.now());
    this.nextBackoff = nextBackoff;
    this.lookForPending = false;
    if (!ready.length) return;
    await submitRounds({
      store: this.store, e: this.e, base: this.base, options: this.so, maxArraySize: (await this.config()).maxArraySize,
      node: this.o.node ?? process.execPath, vmwuJs: this.o.vmwuJs ?? join(packageRoot, 'bin', 'vmwu.js'),
      onSent: (tasks, message) => {
        for (const t of tasks) this.tasks.track(t);
        this.emit({ type: 'info', message });
      },
      onUnsendable: (job, attempt, error) => this.settle(job, attempt, null, { runId: null, exitCode: null, phases: null, totalMs: null, usage: null, status: 'error', error }),
      ...(this.dependency ? { dependency: this.dependency } : {}),
    }, ready);
  }

  /** Closes an attempt the submitter settles itself (lost, unsendable): recorded, job moved on, task settled. */
  private settle(job: number, attempt: number, host: string | null, outcome: AttemptOutcome, batchId: string | null = null): void {
    const { db, e, me } = this;
    const name = e.name;
    const at = now();
    const next = db.transaction(() => {
      recordStartedAttempt(db, { experiment: name, job, attempt, owner: me, runner: me, host, runId: null, batchId, outDir: attemptDir(e, job, attempt), at });
      const n = finishAttempt(db, { experiment: name, job, attempt, owner: me, outcome, maxRetries: e.maxRetries, nowMs: Date.now() });
      settleTasks(db, name, [{ job, attempt }]);
      return n;
    }).immediate();
    this.tasks.untrack(job, attempt);
    if (next?.state === 'pending') this.lookForPending = true;
    this.emit({
      type: 'job-end', job, attempt, status: outcome.status, exitCode: null, error: outcome.error, next: next?.state ?? getJob(db, name, job)?.state ?? 'pending',
      retryInMs: next && next.notBefore ? Math.max(0, next.notBefore - Date.now()) : null, totalMs: null, runId: null,
    });
  }
}
