import type { Db } from '../store/db.js';

/** Which executor an experiment runs on; no row means local. */
export interface ExecutorChoice {
  kind: 'local' | 'slurm' | 'ssh';
  options: Record<string, unknown>;
}

export function setExecutor(db: Db, experiment: string, choice: ExecutorChoice): void {
  db.prepare(`INSERT INTO experiment_executors (experiment, kind, options) VALUES (?, ?, ?)
    ON CONFLICT (experiment) DO UPDATE SET kind = excluded.kind, options = excluded.options`)
    .run(experiment, choice.kind, JSON.stringify(choice.options));
}

export function getExecutor(db: Db, experiment: string): ExecutorChoice {
  const r = db.prepare('SELECT kind, options FROM experiment_executors WHERE experiment = ?').get(experiment) as { kind: ExecutorChoice['kind']; options: string } | undefined;
  return r ? { kind: r.kind, options: JSON.parse(r.options) as Record<string, unknown> } : { kind: 'local', options: {} };
}

export interface Submission {
  id: number;
  experiment: string;
  round: number;
  slurmJobId: string;
  jobs: number[];
  /** Each job's attempt count when it was submitted: an attempt numbered higher was made by this submission's task. */
  attemptsAtSubmit: number[];
  scriptPath: string;
  submittedAt: string;
  active: boolean;
}

interface SubmissionRow {
  id: number; experiment: string; round: number; slurm_job_id: string; jobs: string; script_path: string; submitted_at: string; active: number;
}

const fromRow = (r: SubmissionRow): Submission => {
  const parsed = JSON.parse(r.jobs) as { jobs: number[]; attempts: number[] } | number[];
  // The first development stores kept just the indices.
  const j = Array.isArray(parsed) ? { jobs: parsed, attempts: parsed.map(() => 0) } : parsed;
  return {
    id: r.id, experiment: r.experiment, round: r.round, slurmJobId: r.slurm_job_id, jobs: j.jobs, attemptsAtSubmit: j.attempts,
    scriptPath: r.script_path, submittedAt: r.submitted_at, active: r.active === 1,
  };
};

export function addSubmission(db: Db, s: Omit<Submission, 'id' | 'active'>): void {
  db.prepare(`INSERT INTO slurm_submissions (experiment, round, slurm_job_id, jobs, script_path, submitted_at, active) VALUES (?, ?, ?, ?, ?, ?, 1)`)
    .run(s.experiment, s.round, s.slurmJobId, JSON.stringify({ jobs: s.jobs, attempts: s.attemptsAtSubmit }), s.scriptPath, s.submittedAt);
}

export function listSubmissions(db: Db, experiment: string, activeOnly = false): Submission[] {
  const rows = db.prepare(`SELECT * FROM slurm_submissions WHERE experiment = ? ${activeOnly ? 'AND active = 1' : ''} ORDER BY id`).all(experiment) as SubmissionRow[];
  return rows.map(fromRow);
}

export function deactivateSubmission(db: Db, id: number): void {
  db.prepare('UPDATE slurm_submissions SET active = 0 WHERE id = ?').run(id);
}

export function nextRound(db: Db, experiment: string): number {
  const r = db.prepare('SELECT MAX(round) AS m FROM slurm_submissions WHERE experiment = ?').get(experiment) as { m: number | null };
  return (r.m ?? 0) + 1;
}
