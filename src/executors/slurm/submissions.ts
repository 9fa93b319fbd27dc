import type { Db } from '../../store/db.js';

/** The store's record of a Slurm experiment's submissions: each sbatch array, and the job attempts sent out as its tasks until they settle. */

export interface Submission {
  id: number;
  experiment: string;
  round: number;
  slurmJobId: string;
  jobs: number[];
  scriptPath: string;
  submittedAt: string;
  /** Some of its tasks are not settled yet. */
  active: boolean;
}

interface SubmissionRow {
  id: number; experiment: string; round: number; slurm_job_id: string; jobs: string; script_path: string; submitted_at: string; active: number;
}

const fromRow = (r: SubmissionRow): Submission => {
  const parsed = JSON.parse(r.jobs) as { jobs: number[] } | number[];
  // The first development stores kept just the indices.
  return {
    id: r.id, experiment: r.experiment, round: r.round, slurmJobId: r.slurm_job_id, jobs: Array.isArray(parsed) ? parsed : parsed.jobs,
    scriptPath: r.script_path, submittedAt: r.submitted_at, active: r.active === 1,
  };
};

/** One job attempt sent out as an array task. */
export interface SentTask {
  job: number;
  attempt: number;
  taskId: number;
}

/** Records an sbatch array and its tasks in one transaction; returns the submission's id. */
export function addSubmission(db: Db, s: Omit<Submission, 'id' | 'active' | 'jobs'>, tasks: SentTask[]): number {
  return db.transaction(() => {
    const id = Number(db.prepare(`INSERT INTO slurm_submissions (experiment, round, slurm_job_id, jobs, script_path, submitted_at, active) VALUES (?, ?, ?, ?, ?, ?, 1)`)
      .run(s.experiment, s.round, s.slurmJobId, JSON.stringify({ jobs: tasks.map((t) => t.job) }), s.scriptPath, s.submittedAt).lastInsertRowid);
    const add = db.prepare('INSERT OR REPLACE INTO slurm_tasks (experiment, job, attempt, submission, task_id, settled) VALUES (?, ?, ?, ?, ?, 0)');
    for (const t of tasks) add.run(s.experiment, t.job, t.attempt, id, t.taskId);
    return id;
  }).immediate();
}

export function listSubmissions(db: Db, experiment: string, activeOnly = false): Submission[] {
  const rows = db.prepare(`SELECT * FROM slurm_submissions WHERE experiment = ? ${activeOnly ? 'AND active = 1' : ''} ORDER BY id`).all(experiment) as SubmissionRow[];
  return rows.map(fromRow);
}

export function nextRound(db: Db, experiment: string): number {
  const r = db.prepare('SELECT MAX(round) AS m FROM slurm_submissions WHERE experiment = ?').get(experiment) as { m: number | null };
  return (r.m ?? 0) + 1;
}

/** A task sent out and not settled yet, with its array's Slurm id: what the submitter watches. */
export interface OpenTask extends SentTask {
  submission: number;
  slurmJobId: string;
}

export function openTasks(db: Db, experiment: string): OpenTask[] {
  return db.prepare(`SELECT t.job, t.attempt, t.task_id AS taskId, t.submission, s.slurm_job_id AS slurmJobId
    FROM slurm_tasks t JOIN slurm_submissions s ON s.id = t.submission WHERE t.experiment = ? AND t.settled = 0`).all(experiment) as OpenTask[];
}

/** Marks tasks settled; an array whose tasks are all settled is no longer active. */
export function settleTasks(db: Db, experiment: string, tasks: { job: number; attempt: number }[]): void {
  if (!tasks.length) return;
  const settle = db.prepare('UPDATE slurm_tasks SET settled = 1 WHERE experiment = ? AND job = ? AND attempt = ?');
  for (const t of tasks) settle.run(experiment, t.job, t.attempt);
  db.prepare(`UPDATE slurm_submissions SET active = 0 WHERE experiment = ? AND active = 1
    AND NOT EXISTS (SELECT 1 FROM slurm_tasks t WHERE t.submission = slurm_submissions.id AND t.settled = 0)`).run(experiment);
}
