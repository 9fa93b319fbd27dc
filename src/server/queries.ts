import type { Db } from '../store/db.js';
import type { JobState } from '../sweep/states.js';
import { JOB_STATES } from '../sweep/states.js';

/**
 * The dashboard's reads of an experiment: a page of its jobs (paged, sorted and filtered in SQL), its
 * phase timings, and the signatures the change hub compares.
 */

/** Server-side paging, sorting and filtering of an experiment's jobs: one indexed query per page, whatever the job count. */
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

const SORT_COLUMNS: Record<NonNullable<JobQuery['sort']>, string> = {
  index: 'j.idx', state: 'j.state', exit: 'j.exit_code', attempts: 'j.attempts', duration: 'a.total_ms', started: 'j.started_at',
  host: 'a.host', cpu: 'a.cpu_ms', rss: 'a.max_rss_kib',
};

export const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export function queryJobs(db: Db, experiment: string, q: JobQuery): JobPage {
  const where = ['j.experiment = ?'];
  const args: (string | number)[] = [experiment];
  const states = (q.state ?? []).filter((s) => JOB_STATES.includes(s));
  if (states.length) {
    where.push(`j.state IN (${states.map(() => '?').join(', ')})`);
    args.push(...states);
  }
  for (const [k, v] of Object.entries(q.params ?? {})) {
    if (!PARAM_NAME.test(k)) continue;
    // The name is checked above; json_extract's path cannot be a bound parameter.
    where.push(`CAST(json_extract(j.params, '$.${k}') AS TEXT) = ?`);
    args.push(v);
  }
  const sort = SORT_COLUMNS[q.sort ?? 'index'] ?? 'j.idx';
  const dir = q.dir === 'desc' ? 'DESC' : 'ASC';
  const limit = Math.min(Math.max(Math.trunc(q.limit ?? 50), 1), 500);
  const offset = Math.max(Math.trunc(q.offset ?? 0), 0);
  const from = `FROM experiment_jobs j LEFT JOIN attempts a ON a.experiment = j.experiment AND a.job = j.idx AND a.attempt = j.attempts
    WHERE ${where.join(' AND ')}`;
  const total = (db.prepare(`SELECT COUNT(*) AS n FROM experiment_jobs j WHERE ${where.join(' AND ')}`).get(...args) as { n: number }).n;
  const rows = db.prepare(`SELECT j.idx, j.state, j.params, j.attempts, j.failures, j.exit_code, j.error, j.started_at, j.finished_at,
      a.total_ms, a.run_id, a.host, a.cpu_ms, a.max_rss_kib ${from} ORDER BY ${sort} IS NULL, ${sort} ${dir}, j.idx ${dir} LIMIT ? OFFSET ?`)
    .all(...args, limit, offset) as {
      idx: number; state: JobState; params: string; attempts: number; failures: number; exit_code: number | null; error: string | null;
      started_at: string | null; finished_at: string | null; total_ms: number | null; run_id: string | null;
      host: string | null; cpu_ms: number | null; max_rss_kib: number | null;
    }[];
  return {
    total, offset, limit,
    jobs: rows.map((r) => ({
      index: r.idx, state: r.state, params: JSON.parse(r.params) as Record<string, string>, attempts: r.attempts, failures: r.failures,
      exitCode: r.exit_code, error: r.error, startedAt: r.started_at, finishedAt: r.finished_at, totalMs: r.total_ms, runId: r.run_id,
      host: r.host, cpuMs: r.cpu_ms, maxRssKiB: r.max_rss_kib,
    })),
  };
}

export const PHASES = ['boot', 'restore', 'stageIn', 'exec', 'stageOut', 'shutdown'] as const;

export interface Timings {
  /** Per finished job (latest attempt), at most `maxJobs` of them, by job index. */
  jobs: { index: number; totalMs: number; phases: Record<(typeof PHASES)[number], number> }[];
  /** Per phase over all finished jobs. */
  phaseStats: Record<(typeof PHASES)[number], { mean: number; p50: number; p95: number }>;
  /** Histogram of job durations (ms) over all finished jobs. */
  histogram: { from: number; to: number; count: number }[];
  count: number;
}

function pct(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** Phase timings and a duration histogram of the jobs' latest attempts that ran to an end (not cancelled or interrupted ones). */
export function timings(db: Db, experiment: string, maxJobs = 300, bins = 20): Timings {
  const rows = db.prepare(`SELECT a.job, a.total_ms, a.phases FROM attempts a JOIN experiment_jobs j ON j.experiment = a.experiment AND j.idx = a.job
      AND j.attempts = a.attempt WHERE a.experiment = ? AND a.status IN ('succeeded', 'failed', 'timeout') AND a.total_ms IS NOT NULL AND a.phases IS NOT NULL
      ORDER BY a.job`)
    .all(experiment) as { job: number; total_ms: number; phases: string }[];
  const all = rows.map((r) => {
    const p = JSON.parse(r.phases) as Record<string, number>;
    return { index: r.job, totalMs: r.total_ms, phases: Object.fromEntries(PHASES.map((k) => [k, Math.round(p[k] ?? 0)])) as Timings['jobs'][number]['phases'] };
  });
  const phaseStats = Object.fromEntries(PHASES.map((k) => {
    const v = all.map((j) => j.phases[k]).sort((a, b) => a - b);
    return [k, { mean: v.length ? Math.round(v.reduce((s, x) => s + x, 0) / v.length) : 0, p50: pct(v, 0.5), p95: pct(v, 0.95) }];
  })) as Timings['phaseStats'];
  const d = all.map((j) => j.totalMs);
  const histogram: Timings['histogram'] = [];
  if (d.length) {
    const lo = Math.min(...d);
    const hi = Math.max(...d);
    // Sturges' rule for few jobs, so four durations do not spread over twenty empty bins.
    const n = hi === lo ? 1 : Math.min(bins, Math.ceil(Math.log2(d.length)) + 1);
    const w = hi === lo ? 1 : (hi - lo) / n;
    for (let i = 0; i < n; i++) histogram.push({ from: Math.round(lo + i * w), to: Math.round(lo + (i + 1) * w), count: 0 });
    for (const x of d) histogram[Math.min(n - 1, Math.floor((x - lo) / w))]!.count++;
  }
  return { jobs: all.slice(0, maxJobs), phaseStats, histogram, count: all.length };
}

/**
 * The cheap aggregate the change watcher compares every tick: per experiment, its
 * state and update time, job counts by state and attempt counts. Three grouped
 * queries over indexed tables; a signature per experiment.
 */
export function changeSignatures(db: Db): Map<string, string> {
  const sig = new Map<string, string>();
  for (const r of db.prepare('SELECT name, state, updated_at, owner FROM experiments').all() as { name: string; state: string; updated_at: string; owner: string | null }[]) {
    sig.set(r.name, `${r.state}|${r.updated_at}|${r.owner ?? ''}`);
  }
  for (const r of db.prepare('SELECT experiment, state, COUNT(*) AS n FROM experiment_jobs GROUP BY experiment, state').all() as { experiment: string; state: string; n: number }[]) {
    sig.set(r.experiment, `${sig.get(r.experiment) ?? ''}|${r.state}:${r.n}`);
  }
  for (const r of db.prepare(`SELECT experiment, COUNT(*) AS n, SUM(status = 'running') AS running, COUNT(run_id) AS runs FROM attempts GROUP BY experiment`)
    .all() as { experiment: string; n: number; running: number; runs: number }[]) {
    sig.set(r.experiment, `${sig.get(r.experiment) ?? ''}|a${r.n}/${r.running}/${r.runs}`);
  }
  return sig;
}
