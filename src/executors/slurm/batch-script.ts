import type { SlurmOptions } from '../../request/executor.js';
import { checkNoControlChars } from '../../control-chars.js';
import { nodeCheckLines } from '../node-checks.js';

/**
 * Pure Slurm batch-script generation (no I/O, so the golden-file tests cover all
 * of it): resources → sbatch options, job indices → array chunks, and the
 * readable script each array task runs.
 */

/** Memory Slurm must grant on top of the guest's: QEMU itself, the node-side vmwu (Node.js) and page cache for the disks. */
export const MEMORY_OVERHEAD_MIB = 256;
/** Walltime Slurm grants on top of the job's own timeout: boot, stage-in/out and collection. */
export const BOOT_MARGIN_MS = 5 * 60_000;

export interface SlurmResources {
  memMiB: number;
  cpus: number;
  /** Whole minutes. */
  timeMin: number;
  /** Seconds before the limit at which Slurm signals the task to checkpoint (`--signal=B:USR1@S`), with allocations shorter than the job. */
  checkpointAtS?: number;
  /** A job of several VMs: this many nodes, one task (one VM) on each. */
  nodes?: number;
}

/**
 * How long before an allocation's end the task is told to checkpoint: a minute,
 * or a third of a short allocation. Slurm sends it up to 30 s (its time-limit
 * check period) earlier than asked.
 */
export function checkpointMarginS(allocationMs: number): number {
  return Math.max(5, Math.min(60, Math.floor(allocationMs / 3000)));
}

export function slurmResources(r: { memoryMiB: number; cpus: number; timeoutMs: number }, allocationMs?: number, nodes = 1): SlurmResources {
  const base = { memMiB: r.memoryMiB + MEMORY_OVERHEAD_MIB, cpus: r.cpus, ...(nodes > 1 ? { nodes } : {}) };
  if (allocationMs) return { ...base, timeMin: Math.max(1, Math.ceil(allocationMs / 60_000)), checkpointAtS: checkpointMarginS(allocationMs) };
  return { ...base, timeMin: Math.ceil((r.timeoutMs + BOOT_MARGIN_MS) / 60_000) };
}

/** Slurm's `[days-]hours:minutes:seconds`. */
export function slurmTime(minutes: number): string {
  const d = Math.floor(minutes / 1440);
  const h = Math.floor((minutes % 1440) / 60);
  const m = minutes % 60;
  const hms = `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:00`;
  return d ? `${d}-${hms}` : hms;
}

/** Sorted task ids as Slurm's compact list: 1-4,7,9-12. */
export function arrayRanges(ids: number[]): string {
  const s = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < s.length;) {
    let j = i;
    while (j + 1 < s.length && s[j + 1] === s[j]! + 1) j++;
    parts.push(i === j ? String(s[i]) : `${s[i]}-${s[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

export interface ArrayChunk {
  /** Job index = array task id + offset. */
  offset: number;
  /** Array task ids (1 … MaxArraySize-1). */
  taskIds: number[];
  /** The experiment's job indices in this chunk. */
  jobs: number[];
}

/**
 * Splits job indices into sbatch arrays: Slurm refuses task ids ≥ MaxArraySize,
 * so each chunk is shifted by an offset that the batch script adds back.
 */
export function chunkJobs(jobs: number[], maxArraySize: number): ArrayChunk[] {
  const s = [...new Set(jobs)].sort((a, b) => a - b);
  const limit = Math.max(1, maxArraySize - 1);
  const out: ArrayChunk[] = [];
  for (const j of s) {
    const cur = out[out.length - 1];
    if (cur && j - cur.offset <= limit) {
      cur.taskIds.push(j - cur.offset);
      cur.jobs.push(j);
    } else {
      const offset = j - 1;
      out.push({ offset, taskIds: [1], jobs: [j] });
    }
  }
  return out;
}

/** Single-quoted for sh. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface BatchScriptInput {
  experiment: string;
  /** Index of this submission within the experiment (1, 2, …), for names. */
  round: number;
  chunk: ArrayChunk;
  resources: SlurmResources;
  options: SlurmOptions;
  /** The round's task files, `<job>.json` each (on the shared filesystem). */
  tasksDir: string;
  /** Absolute path of the node binary on the nodes. */
  node: string;
  /** Absolute path of bin/vmwu.js on the nodes. */
  vmwuJs: string;
  /** Directory for the tasks' output files (in the experiment dir). */
  logDir: string;
  /** `--after` on the same cluster: Slurm's `--dependency` (src/executors/slurm/after.ts). */
  dependency?: string;
}

/** Slurm job names may not hold every character an experiment name may. */
function jobName(experiment: string): string {
  return `vmwu-${experiment}`.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64);
}

export function batchScript(b: BatchScriptInput): string {
  // Written bare into `#SBATCH` lines, where a line break would start a shell command.
  const hint = 'sbatch options and store paths must be one line of printable text';
  for (const [what, v] of [['the experiment', b.experiment], ['the log directory', b.logDir], ['--dependency', b.dependency ?? ''], ['--partition', b.options.partition ?? ''], ['--account', b.options.account ?? ''], ...(b.options.extra ?? []).map((x) => ['--slurm-opt', x] as const)] as const) {
    checkNoControlChars(v, `Slurm batch script: ${what}`, 'BAD_VALUE', hint);
  }
  const r = b.resources;
  const array = `${arrayRanges(b.chunk.taskIds)}${b.options.maxParallel ? `%${b.options.maxParallel}` : ''}`;
  const first = b.chunk.jobs[0];
  const last = b.chunk.jobs[b.chunk.jobs.length - 1];
  const lines = [
    '#!/bin/sh',
    `# vmwu: Slurm array for experiment ${b.experiment}, round ${b.round}: jobs ${first}..${last} (${b.chunk.jobs.length} task${b.chunk.jobs.length === 1 ? '' : 's'}).`,
    '# Each array task boots one work-unit VM for one job with `vmwu sweep-task`, from the task file',
    '# the submitter wrote, and reports back as files; it never opens the store\'s database.',
    `#SBATCH --job-name=${jobName(b.experiment)}`,
    `#SBATCH --array=${array}`,
    // A job of several VMs: one node each, one task per node (--mem is per node).
    ...(r.nodes ? [`#SBATCH --nodes=${r.nodes}`, `#SBATCH --ntasks=${r.nodes}`, '#SBATCH --ntasks-per-node=1'] : ['#SBATCH --ntasks=1']),
    // A task lost with its node is sent again by vmwu, as a new attempt: Slurm must not rerun the old one.
    '#SBATCH --no-requeue',
    `#SBATCH --cpus-per-task=${r.cpus}`,
    `#SBATCH --mem=${r.memMiB}M`,
    `#SBATCH --time=${slurmTime(r.timeMin)}`,
    // The job may outlast the allocation: USR1 to the batch shell (vmwu, exec'd below) before the end means checkpoint and stop.
    ...(r.checkpointAtS ? [`#SBATCH --signal=B:USR1@${r.checkpointAtS}`] : []),
    `#SBATCH --output=${b.logDir}/%A_%a.out`,
  ];
  if (b.dependency) lines.push(`#SBATCH --dependency=${b.dependency}`);
  if (b.options.partition) lines.push(`#SBATCH --partition=${b.options.partition}`);
  if (b.options.account) lines.push(`#SBATCH --account=${b.options.account}`);
  for (const x of b.options.extra ?? []) lines.push(`#SBATCH ${x}`);
  lines.push(
    '',
    'set -u',
    `NODE=${shq(b.node)}`,
    `VMWU_JS=${shq(b.vmwuJs)}`,
    `OFFSET=${b.chunk.offset}`,
    'JOB=$((SLURM_ARRAY_TASK_ID + OFFSET))',
    `TASK=${shq(b.tasksDir)}/$JOB.json`,
    'host=$(hostname)',
    '',
    '# A node that cannot run work units fails its task with a reason, before anything boots.',
    ...nodeCheckLines(' (install qemu-system-x86 there, or exclude the node with --slurm-opt=--exclude=$host)'),
    'if [ ! -f "$TASK" ]; then',
    '  echo "vmwu: node $host does not see the task file $TASK (the vmwu store must be on a filesystem shared with the submit host)" >&2',
    '  exit 3',
    'fi',
    '',
    r.nodes
      // Each node's task boots its VM; SLURM_PROCID is its number on the job's network, task 0 the hub's (src/sweep/batch/segment-task.ts).
      ? `exec srun --nodes=${r.nodes} --ntasks=${r.nodes} --ntasks-per-node=1 "$NODE" "$VMWU_JS" sweep-task --task "$TASK" --batch-id "\${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}"`
      : 'exec "$NODE" "$VMWU_JS" sweep-task --task "$TASK" --batch-id "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
    '',
  );
  return lines.join('\n');
}
