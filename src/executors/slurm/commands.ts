import { execFile } from 'node:child_process';
import { VmwuError } from '../../errors.js';
import { parseSacct, parseSqueue, type QueuedTask, type TaskAccounting } from './accounting.js';

/** The Slurm client commands vmwu uses. They read SLURM_CONF from the environment like any Slurm user's. */

interface Out { code: number; stdout: string; stderr: string }

function run(cmd: string, args: string[], cwd?: string): Promise<Out> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: process.env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new VmwuError('NO_SLURM', `${cmd} was not found`, 'run vmwu on a Slurm submit host (the Slurm client commands must be on PATH)'));
        return;
      }
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** `sbatch --parsable SCRIPT`: the new job id. */
export async function sbatch(script: string, cwd: string): Promise<string> {
  const r = await run('sbatch', ['--parsable', script], cwd);
  if (r.code !== 0) throw new VmwuError('SLURM_SUBMIT', `sbatch ${script} failed: ${r.stderr.trim() || `exit ${r.code}`}`, 'the batch script is kept there: check its #SBATCH lines against your cluster');
  const id = r.stdout.trim().split(';')[0] ?? '';
  if (!/^\d+$/.test(id)) throw new VmwuError('SLURM_SUBMIT', `sbatch printed no job id: ${r.stdout.trim()}`);
  return id;
}

export async function scancel(jobId: string): Promise<void> {
  const r = await run('scancel', [jobId]);
  if (r.code !== 0 && !/invalid job id|already completing or completed/i.test(r.stderr)) {
    throw new VmwuError('SLURM_CANCEL', `scancel ${jobId} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  }
}

/** Lifts the dependency of a job (every pending task of an array): it may start as soon as Slurm places it. */
export async function liftDependency(jobId: string): Promise<void> {
  const r = await run('scontrol', ['update', `JobId=${jobId}`, 'Dependency=']);
  const failed = r.code === 0 ? null : dependencyNotLifted(r.stderr);
  if (failed !== null) throw new VmwuError('SLURM_UPDATE', `scontrol update JobId=${jobId} Dependency= failed: ${failed || `exit ${r.code}`}`);
}

/** What nothing more is to be done for: a job or task gone, running or done (Slurm released it itself meanwhile). */
const NOTHING_TO_LIFT = /invalid job id|already completing or completed|job is no longer pending|has already finished|^no error$/i;

/**
 * What of a failed `scontrol update … Dependency=` is an error, or null when
 * nothing is. For an array it answers per range of tasks (`18_1-2: Job has
 * already finished`, `18_3-4: No error`), so each line is judged on its own. Pure.
 */
export function dependencyNotLifted(stderr: string): string | null {
  const errors = stderr.split('\n').map((l) => l.trim()).filter(Boolean)
    .filter((l) => !NOTHING_TO_LIFT.test(l.replace(/^[\d_[\]\-,]+:\s*/, '')));
  return errors.length ? errors.join('; ') : stderr.trim() ? null : '';
}

export interface ClusterConfig {
  /** Slurm refuses array task ids ≥ this (default 1001). */
  maxArraySize: number;
  /** Whether `sacct` has anything to say (accounting_storage/slurmdbd). */
  accounting: boolean;
}

/** MaxArraySize and the accounting storage, from `scontrol show config` (Slurm's defaults if it cannot be read). */
export async function clusterConfig(): Promise<ClusterConfig> {
  const r = await run('scontrol', ['show', 'config']);
  const m = /^MaxArraySize\s*=\s*(\d+)/m.exec(r.stdout);
  const acct = /^AccountingStorageType\s*=\s*(\S+)/m.exec(r.stdout)?.[1] ?? 'accounting_storage/none';
  return { maxArraySize: m ? Number(m[1]) : 1001, accounting: acct !== 'accounting_storage/none' };
}

/**
 * The tasks of these arrays still in the queue, in one `squeue` call whatever the
 * number of jobs: "ARRAYJOB_TASK" → state and node. Undefined when squeue failed
 * (a busy slurmctld times out now and then): the caller asks again later rather
 * than take every task for gone.
 */
export async function queuedTasks(arrayIds: string[]): Promise<Map<string, QueuedTask> | undefined> {
  if (!arrayIds.length) return new Map();
  const r = await run('squeue', ['-h', '-r', '-j', arrayIds.join(','), '-o', '%i|%T|%N']);
  if (r.code !== 0) {
    // Every id purged from slurmctld's memory: nothing of them is queued.
    if (/invalid job id/i.test(r.stderr)) return new Map();
    return undefined;
  }
  return parseSqueue(r.stdout);
}

/** Accounting of the tasks of these arrays (state, node, TotalCPU, MaxRSS), in one `sacct` call; undefined if sacct failed. */
export async function sacctTasks(arrayIds: string[]): Promise<Map<string, TaskAccounting> | undefined> {
  if (!arrayIds.length) return new Map();
  const r = await run('sacct', ['-n', '-P', '-o', 'JobID,State,NodeList,TotalCPU,MaxRSS', '-j', arrayIds.join(',')]);
  return r.code === 0 ? parseSacct(r.stdout) : undefined;
}
