import { mkdirSync, readdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isVmwuError, VmwuError } from '../../errors.js';
import { DirSyncBatch, withFullSync } from '../../store/durable.js';
import type { Store } from '../../store/store.js';
import type { AttemptResult } from '../driver.js';
import type { VmOutcome } from '../../run/job-request.js';
import { attemptDir, resultsDir } from '../experiment.js';
import { attemptStatus, getExperiment, getJob, recordedOutputs } from '../records/reads.js';
import { finishAttempt, recordStartedAttempt, type AttemptOutcome } from '../records/lifecycle.js';
import { type Experiment } from '../records/types.js';
import type { RecordedOutputs } from '../destinations.js';
import { outcomeOf, type SweepEvent } from '../outcome.js';
import { compileJob } from '../script.js';
import { stageOut } from '../staging.js';
import { parseReportName, readReport, reportTag, REPORTS_DIR, type Report } from './task-files.js';
import { insertCheckpoint } from '../../run/checkpoint/records.js';

/**
 * The submitter's side of a batch executor: the reports its tasks leave on the shared filesystem
 * applied to the store, settling each attempt and moving its job on.
 */

export interface IngestOptions {
  /** The submitter: it owns the jobs it moves. */
  owner: string;
  /** The outputs recorded so far, kept up to date by the caller; read from the store when absent. */
  recorded?: RecordedOutputs;
  /** Reports applied per transaction. */
  batch?: number;
}

export interface IngestResult {
  /** Attempts that finished (done reports applied), by job and attempt. */
  finished: { job: number; attempt: number; status: AttemptOutcome['status'] }[];
  events: SweepEvent[];
  /** Reports already applied before (ingested twice), or about attempts settled otherwise. */
  skipped: number;
}

type Parsed = { file: string; report: Report };

/** What a node's result means for the job: an attempt stopped by vmwu is an interruption, or a cancel when one was asked for. */
function outcomeOfReport(r: Extract<Report, { kind: 'done' }>, dir: string, cancelling: boolean): AttemptOutcome {
  const x = r.result;
  const stopped = x.error?.code === 'INTERRUPTED';
  const result: AttemptResult = {
    runId: x.id, status: stopped ? 'interrupted' : x.status, exitCode: x.exitCode,
    phases: (x.phases ?? null) as AttemptResult['phases'], totalMs: x.totalMs ?? null, error: x.error, usage: x.usage, start: x.start,
    ...(x.vms ? { vms: x.vms as VmOutcome[] } : {}),
  };
  const o = outcomeOf(result, dir);
  return stopped && cancelling ? { ...o, status: 'cancelled', error: 'cancelled' } : o;
}

/**
 * Applies the reports that batch tasks left in the experiment's `reports/`: a
 * `start` records the attempt and moves its job to running; a `done` finishes the
 * attempt and moves the job on (done, retry, failed), after the attempt's
 * stage-outs are copied into results/. Reports go in batches, one transaction
 * each; then each report moves beside its attempt (`jobs/N/attempt-K.done.json`),
 * so the inbox stays small. Durability costs one directory fsync per batch (the
 * results staged out are on the disk before the transaction names them) and one
 * WAL fsync per batch (the transaction is on the disk before its reports move). Applying a report twice changes nothing: an attempt
 * already recorded or settled is left alone. Cost: proportional to the reports
 * waiting, not to the jobs of the experiment.
 */
export async function ingestReports(store: Store, e: Experiment, o: IngestOptions): Promise<IngestResult> {
  const out: IngestResult = { finished: [], events: [], skipped: 0 };
  const inbox = join(e.dir, REPORTS_DIR);
  let names: string[];
  try {
    names = readdirSync(inbox);
  } catch {
    return out;
  }
  const order = { start: 0, checkpoint: 1, done: 2 };
  const waiting = names.map((n) => ({ n, k: parseReportName(n) })).filter((x) => x.k)
    .sort((a, b) => a.k!.job - b.k!.job || a.k!.attempt - b.k!.attempt || order[a.k!.kind] - order[b.k!.kind]);
  const size = o.batch ?? 500;
  for (let i = 0; i < waiting.length; i += size) {
    const parsed: Parsed[] = [];
    for (const { n, k } of waiting.slice(i, i + size)) {
      const file = join(inbox, n);
      try {
        const report = readReport(file);
        // What a report says must match its name and this experiment's jobs: it names the attempt it settles.
        if (report.experiment !== e.name || report.job !== k!.job || report.attempt !== k!.attempt || reportTag(report) !== k!.tag || report.job > e.jobCount) {
          throw new VmwuError('BAD_TASK_FILE', `${file}: report of ${report.experiment} job ${report.job} attempt ${report.attempt} (${report.kind}) does not belong here`);
        }
        parsed.push({ file, report });
      } catch (err) {
        out.events.push({ type: 'warning', message: `${(err as Error).message}; moved to ${REPORTS_DIR}/bad/` });
        mkdirSync(join(inbox, 'bad'), { recursive: true });
        renameSync(file, join(inbox, 'bad', n));
      }
    }
    await applyBatch(store, e, parsed, o, out);
    for (const p of parsed) {
      const r = p.report;
      const dest = `${attemptDir(e, r.job, r.attempt)}.${reportTag(r)}.json`;
      try {
        renameSync(p.file, dest);
      } catch (err) {
        // The job's directory does not exist when its node never wrote an output.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        mkdirSync(dirname(dest), { recursive: true });
        renameSync(p.file, dest);
      }
    }
  }
  return out;
}

async function applyBatch(store: Store, e: Experiment, batch: Parsed[], o: IngestOptions, out: IngestResult): Promise<void> {
  const db = store.db;
  const state = getExperiment(db, e.name)?.state;
  const cancelling = state === 'cancelling' || state === 'cancelled';
  // Outcomes first, outside the transaction: a successful attempt's stage-outs are
  // file copies (idempotent: temporary name, then rename), done before it is recorded.
  const outcomes = new Map<Parsed, AttemptOutcome>();
  let recorded = o.recorded;
  const dirs = new DirSyncBatch();
  const todo = batch.filter((p) => {
    const r = p.report;
    const status = r.kind === 'done' ? attemptStatus(db, e.name, r.job, r.attempt) : undefined;
    return r.kind === 'done' && (!status || status === 'running');
  });
  for (const p of todo) {
    const r = p.report as Extract<Report, { kind: 'done' }>;
    const dir = attemptDir(e, r.job, r.attempt);
    let outcome = outcomeOfReport(r, dir, cancelling);
    const job = getJob(db, e.name, r.job);
    if (outcome.status === 'succeeded' && job) {
      try {
        const outputsSoFar = (recorded ??= recordedOutputs(db, e.name));
        const outputs = await stageOut(compileJob(job.commands, `job ${job.index}`).stageOut, join(dir, 'work'), resultsDir(e),
          { maxBytes: e.resources.maxOutputBytes, othersOutput: (d) => outputsSoFar.conflict(job.index, d), dirs });
        outputsSoFar.add(job.index, outputs);
        outcome = { ...outcome, outputs };
      } catch (err) {
        outcome = { ...outcome, status: 'error', error: `${isVmwuError(err) ? err.code : 'STAGE_OUT'}: ${(err as Error).message}` };
      }
    }
    outcomes.set(p, outcome);
  }
  dirs.flushSync();
  const now = Date.now();
  withFullSync(db, () => db.transaction(() => {
    for (const p of batch) {
      const r = p.report;
      const dir = attemptDir(e, r.job, r.attempt);
      const fresh = recordStartedAttempt(db, {
        experiment: e.name, job: r.job, attempt: r.attempt, owner: o.owner, runner: r.owner, host: r.host, runId: r.runId, batchId: r.batchId, outDir: dir, at: r.at,
      });
      if (fresh) out.events.push({ type: 'job-start', job: r.job, attempt: r.attempt });
      else if (r.kind === 'start') out.skipped++;
      if (r.kind === 'checkpoint') {
        insertCheckpoint(db, { ...r.checkpoint, runId: r.runId }, r.checkpoint.dir, { experiment: e.name, job: r.job, attempt: r.attempt });
        continue;
      }
      if (r.kind !== 'done') continue;
      const outcome = outcomes.get(p);
      if (!outcome || attemptStatus(db, e.name, r.job, r.attempt) !== 'running') {
        out.skipped++;
        continue;
      }
      const next = finishAttempt(db, { experiment: e.name, job: r.job, attempt: r.attempt, owner: o.owner, outcome, maxRetries: e.maxRetries, nowMs: now });
      out.finished.push({ job: r.job, attempt: r.attempt, status: outcome.status });
      out.events.push({
        type: 'job-end', job: r.job, attempt: r.attempt, status: outcome.status, exitCode: outcome.exitCode, error: outcome.error,
        next: next?.state ?? getJob(db, e.name, r.job)?.state ?? 'pending', retryInMs: next && next.notBefore ? Math.max(0, next.notBefore - now) : null,
        totalMs: outcome.totalMs, runId: outcome.runId,
      });
    }
  }).immediate());
}
