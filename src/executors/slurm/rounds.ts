import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SlurmOptions } from '../../request/executor.js';
import type { Base } from '../../store/bases.js';
import type { Db } from '../../store/db.js';
import { syncDirSync } from '../../store/durable.js';
import type { Store } from '../../store/store.js';
import { taskFileFor, writeFileAtomic } from '../../sweep/batch/task-files.js';
import { getJob } from '../../sweep/records/reads.js';
import type { Experiment } from '../../sweep/records/types.js';
import { batchScript, chunkJobs, slurmResources, type SlurmResources } from './batch-script.js';
import { jobNodes } from '../../sweep/job-nodes.js';
import { sbatch } from './commands.js';
import { addSubmission, nextRound, type OpenTask, type SentTask } from './submissions.js';

/** Submission rounds: an experiment's pending jobs sent to Slurm, a task file per job attempt and one `sbatch --array` per chunk of MaxArraySize. */

/** Where an experiment's Slurm files go: the rounds' batch scripts and task files, and each task's output. */
export function slurmDir(e: Experiment): string {
  return join(e.dir, 'slurm');
}

/** The pending jobs with no task out: those ready at `nowMs`, and when the earliest backoff of the others ends (Infinity: none). */
export function pendingJobs(db: Db, experiment: string, nowMs: number): { ready: number[]; nextBackoff: number } {
  const rows = db.prepare(`SELECT idx, not_before FROM experiment_jobs j WHERE experiment = ? AND state = 'pending'
    AND NOT EXISTS (SELECT 1 FROM slurm_tasks t WHERE t.experiment = j.experiment AND t.job = j.idx AND t.settled = 0) ORDER BY idx`).all(experiment) as { idx: number; not_before: number }[];
  return {
    ready: rows.filter((r) => r.not_before <= nowMs).map((r) => r.idx),
    nextBackoff: Math.min(Infinity, ...rows.filter((r) => r.not_before > nowMs).map((r) => r.not_before)),
  };
}

export interface Round {
  store: Store;
  e: Experiment;
  base: Base;
  options: SlurmOptions;
  maxArraySize: number;
  /** Where the nodes find node and vmwu. */
  node: string;
  vmwuJs: string;
  /** An array went out with these tasks. */
  onSent(tasks: OpenTask[], message: string): void;
  /** A job that cannot be sent (a staged-in file vanished): its attempt fails here, with the reason. */
  onUnsendable(job: number, attempt: number, error: string): void;
  /** Slurm's `--dependency` for the arrays, while the experiment goes after one still out there. */
  dependency?: string;
}

/** Sends these ready jobs, as many arrays as MaxArraySize needs; each array and its tasks are recorded as a round of the experiment. */
export async function submitRounds(r: Round, ready: number[]): Promise<void> {
  const { store, e } = r;
  const db = store.db;
  const dir = slurmDir(e);
  mkdirSync(dir, { recursive: true });
  // Jobs of as many VMs go out together: an array asks the same nodes of each of its tasks.
  const byNodes = new Map<number, number[]>();
  for (const idx of ready) {
    const n = jobNodes(e.resources, getJob(db, e.name, idx)!.params);
    const same = byNodes.get(n);
    if (same) same.push(idx);
    else byNodes.set(n, [idx]);
  }
  for (const [nodes, jobs] of byNodes) await submitArrays(r, jobs, slurmResources(e.resources, r.options.allocationMs, nodes));
}

async function submitArrays(r: Round, ready: number[], res: SlurmResources): Promise<void> {
  const { store, e } = r;
  const db = store.db;
  const dir = slurmDir(e);
  for (const chunk of chunkJobs(ready, r.maxArraySize)) {
    const round = nextRound(db, e.name);
    const tasksDir = join(dir, `round-${round}`);
    mkdirSync(tasksDir, { recursive: true });
    const sent: SentTask[] = [];
    for (const [k, idx] of chunk.jobs.entries()) {
      const job = getJob(db, e.name, idx)!;
      const attempt = job.attempts + 1;
      try {
        writeFileAtomic(join(tasksDir, `${idx}.json`), JSON.stringify(taskFileFor(store, e, r.base, job, attempt)), { dirSync: false });
        sent.push({ job: idx, attempt, taskId: chunk.taskIds[k]! });
      } catch (err) {
        r.onUnsendable(idx, attempt, (err as Error).message);
      }
    }
    if (!sent.length) continue;
    // One fsync for the round's directory, not one per task file.
    syncDirSync(tasksDir);
    const sentChunk = { offset: chunk.offset, taskIds: sent.map((s) => s.taskId), jobs: sent.map((s) => s.job) };
    const scriptPath = join(dir, `round-${round}.sbatch`);
    writeFileAtomic(scriptPath, batchScript({
      experiment: e.name, round, chunk: sentChunk, resources: res, options: r.options, tasksDir, node: r.node, vmwuJs: r.vmwuJs, logDir: dir,
      ...(r.dependency ? { dependency: r.dependency } : {}),
    }));
    const id = await sbatch(scriptPath, e.dir);
    const submission = addSubmission(db, { experiment: e.name, round, slurmJobId: id, scriptPath, submittedAt: new Date().toISOString() }, sent);
    r.onSent(sent.map((s) => ({ ...s, submission, slurmJobId: id })), `submitted Slurm array ${id} (round ${round}, ${sent.length} jobs): ${scriptPath}`);
  }
}
