import type { Db } from '../store/db.js';
import { allExperimentTotals, experimentTotals } from '../sweep/records/reads.js';
import { changeSignature, emptyTotals, jobsInStates } from '../sweep/records/summary.js';
import type { JobState } from '../sweep/states.js';
import { JOB_STATES } from '../sweep/states.js';

/**
 * The dashboard's reads of an experiment: a page of its jobs (paged, sorted and filtered in SQL), its
 * phase timings, and the signatures the change hub compares.
 */

/**
 * Server-side paging, sorting and filtering of an experiment's jobs: one walk along
 * one index per page, whatever the job count (migration 19 indexes every sortable
 * column, keeps the latest attempt's figures on the job's row and each parameter
 * in job_params). Deep pages by offset stay cheap: skipped index entries are not read.
 */
export interface JobQuery {
  state?: JobState[];
  /** Exact parameter values, e.g. {x: '3'}. */
  params?: Record<string, string>;
  sort?: 'index' | 'state' | 'exit' | 'attempts' | 'duration' | 'started' | 'host' | 'cpu' | 'rss';
  dir?: 'asc' | 'desc';
  offset?: number;
  limit?: number;
}

export interface JobRow {
  index: number;
  state: JobState;
  params: Record<string, string>;
  attempts: number;
  failures: number;
  exitCode: number | null;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** The latest attempt's total time. */
  totalMs: number | null;
  runId: string | null;
  /** Where the latest attempt ran, and what its QEMU used. */
  host: string | null;
  cpuMs: number | null;
  maxRssKiB: number | null;
}

export interface JobPage {
  total: number;
  offset: number;
  limit: number;
  jobs: JobRow[];
}

/** Each sort is a column of experiment_jobs with an index (experiment, column, idx): the latest attempt's figures are last_*. */
const SORT_COLUMNS: Record<NonNullable<JobQuery['sort']>, string> = {
  index: 'idx', state: 'state', exit: 'exit_code', attempts: 'attempts', duration: 'last_total_ms', started: 'started_at',
  host: 'last_host', cpu: 'last_cpu_ms', rss: 'last_max_rss_kib',
};

export const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export function queryJobs(db: Db, experiment: string, q: JobQuery): JobPage {
  const where = ['experiment = ?'];
  const args: (string | number)[] = [experiment];
  const states = [...new Set((q.state ?? []).filter((s) => JOB_STATES.includes(s)))];
  if (states.length) {
    where.push(`state IN (${states.map(() => '?').join(', ')})`);
    args.push(...states);
  }
  const params = Object.entries(q.params ?? {}).filter(([k]) => PARAM_NAME.test(k));
  for (const [k, v] of params) {
    // Through job_params' index, not each job's JSON; name and value are bound, never put into the SQL.
    where.push('idx IN (SELECT idx FROM job_params WHERE experiment = ? AND name = ? AND value = ?)');
    args.push(experiment, k, v);
  }
  const sort = SORT_COLUMNS[q.sort ?? 'index'] ?? 'idx';
  const dir = q.dir === 'desc' ? 'DESC' : 'ASC';
  const limit = Math.min(Math.max(Math.trunc(q.limit ?? 50), 1), 500);
  const offset = Math.max(Math.trunc(q.offset ?? 0), 0);
  const cond = where.join(' AND ');
  // Filtered by state alone (or not at all), the total is the kept counts': nothing is counted.
  const total = params.length
    ? (db.prepare(`SELECT COUNT(*) AS n FROM experiment_jobs WHERE ${cond}`).get(...args) as { n: number }).n
    : jobsInStates(experimentTotals(db, experiment).counts, states);
  // Jobs without a value last in either direction, as before; SQLite walks the index for NULLS LAST too.
  const order = sort === 'idx' ? `idx ${dir}` : `${sort} ${dir} NULLS LAST, idx ${dir}`;
  const rows = db.prepare(`SELECT idx, state, params, attempts, failures, exit_code, error, started_at, finished_at,
      last_total_ms, last_run_id, last_host, last_cpu_ms, last_max_rss_kib FROM experiment_jobs WHERE ${cond} ORDER BY ${order} LIMIT ? OFFSET ?`)
    .all(...args, limit, offset) as {
      idx: number; state: JobState; params: string; attempts: number; failures: number; exit_code: number | null; error: string | null;
      started_at: string | null; finished_at: string | null; last_total_ms: number | null; last_run_id: string | null;
      last_host: string | null; last_cpu_ms: number | null; last_max_rss_kib: number | null;
    }[];
  return {
    total, offset, limit,
    jobs: rows.map((r) => ({
      index: r.idx, state: r.state, params: JSON.parse(r.params) as Record<string, string>, attempts: r.attempts, failures: r.failures,
      exitCode: r.exit_code, error: r.error, startedAt: r.started_at, finishedAt: r.finished_at, totalMs: r.last_total_ms, runId: r.last_run_id,
      host: r.last_host, cpuMs: r.last_cpu_ms, maxRssKiB: r.last_max_rss_kib,
    })),
  };
}

/** The phases the dashboard charts (`template` is 0 in records older than it). */
export const PHASES = ['template', 'boot', 'restore', 'stageIn', 'exec', 'stageOut', 'shutdown'] as const;

export interface Timings {
  /** Per finished job (latest attempt), at most `maxJobs` of them, by job index. */
  jobs: { index: number; totalMs: number; phases: Record<(typeof PHASES)[number], number> }[];
  /** Per phase over the finished jobs (or the sample of them). */
  phaseStats: Record<(typeof PHASES)[number], { mean: number; p50: number; p95: number }>;
  /** Histogram of job durations (ms) over the finished jobs; of a sample, each of its jobs counts for `sampled`. */
  histogram: { from: number; to: number; count: number }[];
  /** Finished jobs: counted, or estimated from the sample (a multiple of `sampled`). */
  count: number;
  /** 1: every job was read. n > 1: about one job in n was (the sample), each standing for n. */
  sampled: number;
}

/**
 * Above this many jobs, phase statistics and the histogram come from a sample of
 * the experiment's jobs: a request parses about this many jobs' phases, however
 * big the experiment. The p95 of 2,000 draws is within about a percentile point
 * of that of all.
 */
export const TIMINGS_SAMPLE = 2000;

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

type TimedJob = Timings['jobs'][number];
interface TimedRow { job: number; total_ms: number; phases: string }

function timedJob(r: TimedRow): TimedJob {
  const p = JSON.parse(r.phases) as Record<string, number>;
  return { index: r.job, totalMs: r.total_ms, phases: Object.fromEntries(PHASES.map((k) => [k, Math.round(p[k] ?? 0)])) as TimedJob['phases'] };
}

/** Phase statistics and the duration histogram of `jobs`, each standing for `weight` jobs. Pure. */
export function summariseTimings(jobs: TimedJob[], weight = 1, bins = 20): Pick<Timings, 'phaseStats' | 'histogram' | 'count'> {
  const phaseStats = Object.fromEntries(PHASES.map((k) => {
    const v = jobs.map((j) => j.phases[k]).sort((a, b) => a - b);
    return [k, { mean: v.length ? Math.round(v.reduce((s, x) => s + x, 0) / v.length) : 0, p50: pct(v, 0.5), p95: pct(v, 0.95) }];
  })) as Timings['phaseStats'];
  const d = jobs.map((j) => j.totalMs);
  const histogram: Timings['histogram'] = [];
  if (d.length) {
    const lo = d.reduce((m, x) => Math.min(m, x));
    const hi = d.reduce((m, x) => Math.max(m, x));
    // Sturges' rule for few jobs, so four durations do not spread over twenty empty bins.
    const n = hi === lo ? 1 : Math.min(bins, Math.ceil(Math.log2(d.length * weight)) + 1);
    const w = hi === lo ? 1 : (hi - lo) / n;
    for (let i = 0; i < n; i++) histogram.push({ from: Math.round(lo + i * w), to: Math.round(lo + (i + 1) * w), count: 0 });
    for (const x of d) histogram[Math.min(n - 1, Math.floor((x - lo) / w))]!.count += weight;
  }
  return { phaseStats, histogram, count: d.length * weight };
}

const TIMED = `a.status IN ('succeeded', 'failed', 'timeout') AND a.total_ms IS NOT NULL AND a.phases IS NOT NULL`;
/**
 * The jobs' latest attempts that ran to an end, in job order: attempts walked along
 * their key, each checked against its job through the (experiment, attempts, idx)
 * index alone. CROSS JOIN keeps that order (SQLite may otherwise start from the jobs).
 */
const LATEST_TIMED = `SELECT a.job, a.total_ms, a.phases FROM attempts a CROSS JOIN experiment_jobs j
  WHERE a.experiment = ? AND j.experiment = a.experiment AND j.idx = a.job AND j.attempts = a.attempt AND ${TIMED}`;

/**
 * Phase timings and a duration histogram of the jobs' latest attempts that ran to
 * an end (not cancelled or interrupted ones): of all of them, or above `sample`
 * jobs of an evenly spread sample (`sampled`). The per-job chart is always the
 * first `maxJobs` finished jobs by index.
 */
export function timings(db: Db, experiment: string, maxJobs = 300, bins = 20, sample = TIMINGS_SAMPLE): Timings {
  const jobCount = (db.prepare('SELECT job_count AS n FROM experiments WHERE name = ?').get(experiment) as { n: number } | undefined)?.n ?? 0;
  const stride = Math.max(1, Math.ceil(jobCount / Math.max(1, sample)));
  if (stride === 1) {
    const all = (db.prepare(`${LATEST_TIMED} ORDER BY a.job`).all(experiment) as TimedRow[]).map(timedJob);
    return { jobs: all.slice(0, maxJobs), ...summariseTimings(all, 1, bins), sampled: 1 };
  }
  // One job in `stride`, chosen by Fibonacci hashing of its index: the same jobs on every request, and spread evenly
  // over any grid of parameters (every nth job would be one column of a grid n wide). The walk skips the others'
  // attempts by their key alone, reading only the sample's rows.
  const picked = (db.prepare(`${LATEST_TIMED} AND (a.job * 2654435761) % 4294967296 < ? ORDER BY a.job`)
    .all(experiment, Math.floor(2 ** 32 / stride)) as TimedRow[]).map(timedJob);
  const first = (db.prepare(`${LATEST_TIMED} ORDER BY a.job LIMIT ?`).all(experiment, maxJobs) as TimedRow[]).map(timedJob);
  return { jobs: first, ...summariseTimings(picked, stride, bins), sampled: stride };
}

/**
 * The cheap aggregate the change watcher compares every tick: per experiment, its
 * row's state, update time and owner with the totals kept beside its jobs
 * (summary.ts). One read of one row per experiment, whatever the job counts.
 */
export function changeSignatures(db: Db): Map<string, string> {
  const totals = allExperimentTotals(db);
  const sig = new Map<string, string>();
  for (const r of db.prepare('SELECT name, state, updated_at, owner FROM experiments').all() as { name: string; state: string; updated_at: string; owner: string | null }[]) {
    sig.set(r.name, changeSignature({ state: r.state, updatedAt: r.updated_at, owner: r.owner }, totals.get(r.name) ?? emptyTotals(r.name)));
  }
  return sig;
}
