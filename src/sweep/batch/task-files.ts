import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { guestProcessSchema } from '../../run/command.js';
import { join } from 'node:path';
import { z } from 'zod';
import { VmwuError } from '../../errors.js';
import { DATASET_NAME } from '../../data/ref.js';
import { CHECKPOINT_ID } from '../../run/checkpoint/format.js';
import { CPU_FEATURE } from '../../vm/cpu.js';
import { runResultSchema } from '../../run/result-schema.js';
import type { Base } from '../../store/bases.js';
import type { Store } from '../../store/store.js';
import { attemptLogPaths } from '../../run/instance.js';
import { LOCAL_ORIGIN } from '../../run/checkpoint/records.js';
import { resumableCheckpoint } from '../attempt-checkpoints.js';
import { prepareLaunch } from '../job-launch.js';
import { SCRIPT_MAX_CHARS } from '../script.js';
import { jobNodes } from '../job-nodes.js';
import { segmentToken } from '../../run/multi-vm.js';
import { attemptDir } from '../experiment.js';
import type { Experiment, JobRecord } from '../records/types.js';

/**
 * What the submitter and a batch task on a compute node hand each other, as files
 * on the shared filesystem, so that nodes never open the store's database:
 * - a **task file** (written by the submitter, one per job attempt sent out): the
 *   job's command, parameters, inputs, resources and the unit's blob digests;
 * - **reports** (written by the task into the experiment's `reports/`): `start`
 *   when the job boots, `done` with its result. The submitter ingests them into
 *   the database and moves them beside the attempt.
 * Every file is written to a temporary name, fsynced and renamed, so a reader sees
 * it whole or not at all.
 */

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const absolute = z.string().min(1).max(4096).refine((p) => p.startsWith('/'), 'must be an absolute path');
const count = z.number().int().positive();

export const TASK_VERSION = 2;
export const taskSchema = z.object({
  version: z.literal(TASK_VERSION),
  experiment: z.string().min(1).max(64),
  job: count,
  attempt: count,
  /** The store the blobs are read from (never its database). */
  store: absolute,
  /** Where the attempt's outputs go; must be new. */
  outDir: absolute,
  reportsDir: absolute,
  base: z.object({
    boot: z.enum(['kernel', 'bios']),
    kernel: digest.nullable(),
    initrd: digest.nullable(),
    root: digest,
    cmdline: z.string().max(4096),
    virtualSize: count,
  }),
  /** The unit's layer chain, top first. */
  layers: z.array(digest),
  /**
   * A job of several VMs: an allocation of `size` nodes, one task and one VM on
   * each (Slurm's SLURM_PROCID is the VM's number); the token keys the job's
   * segment between them (src/vm/segment-tls.ts).
   */
  segment: z.object({ size: z.number().int().min(2).max(254), token: z.string().regex(/^[0-9a-f]{32,64}$/), outputsAll: z.boolean() }).optional(),
  /** On a base pulled from a container image: the process its jobs run in. */
  process: guestProcessSchema.optional(),
  launch: z.object({
    argv: z.array(z.string()).min(1),
    params: z.record(z.string(), z.string()),
    inputs: z.array(z.object({ path: absolute, name: z.string().min(1).max(255) })),
    script: z.string().max(SCRIPT_MAX_CHARS).optional(),
  }),
  resources: z.object({
    memoryMiB: count, cpus: count, timeoutMs: count, maxOutputBytes: count, cold: z.boolean().optional(), checkpointEveryMs: count.optional(), checkpointable: z.boolean().optional(),
    cpuNeeds: z.array(z.string().regex(CPU_FEATURE)).max(128).optional(),
    datasets: z.array(z.object({ name: z.string().regex(DATASET_NAME), digest })).max(100).optional(),
    scratchBytes: count.optional(), rootBytes: count.optional(),
    stdin: z.union([z.object({ host: absolute }), z.object({ work: z.string().min(1).max(4096) })]).optional(),
  }),
  /** Go on from this checkpoint (in the store) instead of starting the job; the logs of the attempt that took it are copied up to it. */
  resumeFrom: z.object({ id: z.string().regex(CHECKPOINT_ID), dir: absolute, logs: z.object({ stdout: absolute, stderr: absolute }) }).optional(),
});
export type TaskFile = z.infer<typeof taskSchema>;

const reportHead = {
  experiment: z.string().min(1).max(64),
  job: count,
  attempt: count,
  /** The node's host name. */
  host: z.string().min(1).max(255),
  /** The task's process identity on that node. */
  owner: z.string().min(1).max(512),
  /** The batch system's id of the task (Slurm: ARRAYJOB_TASK). */
  batchId: z.string().max(64).nullable(),
  runId: z.string().regex(/^[0-9a-f]{6,32}$/),
  at: z.string().max(40),
};

export const reportSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('start'), ...reportHead }),
  /** A checkpoint the task took (periodic, or before its allocation ends), for the store to record. */
  z.object({ kind: z.literal('checkpoint'), ...reportHead, checkpoint: z.object({
    id: z.string().regex(CHECKPOINT_ID), dir: absolute, createdAt: z.string().max(40), bytes: z.number().int().nonnegative(),
    qemu: z.string().max(4096), stopped: z.boolean(), blobs: z.array(digest).max(8),
  }) }),
  z.object({ kind: z.literal('done'), ...reportHead, result: runResultSchema }),
]);
export type Report = z.infer<typeof reportSchema>;
export type ReportKind = Report['kind'];

export const REPORTS_DIR = 'reports';

/** Everything one job attempt needs on its node, from the experiment and the store; writes the job script beside the attempt. */
export function taskFileFor(store: Store, e: Experiment, base: Base, job: JobRecord, attempt: number): TaskFile {
  const outDir = attemptDir(e, job.index, attempt);
  const nodes = jobNodes(e.resources, job.params);
  return {
    version: TASK_VERSION, experiment: e.name, job: job.index, attempt, store: store.paths.root, outDir, reportsDir: join(e.dir, REPORTS_DIR),
    base: { boot: base.boot, kernel: base.kernel, initrd: base.initrd, root: base.root, cmdline: base.cmdline, virtualSize: base.virtualSize },
    layers: e.target.layers, ...(nodes > 1 ? { segment: { size: nodes, token: segmentToken(), outputsAll: Boolean(e.resources.outputsAll) } } : {}), process: e.target.process, launch: prepareLaunch({ experiment: e, job, attempt, outDir }), resources: e.resources,
    ...resumeFromFor(store, e, job.index),
  };
}

/** The checkpoint a job's next attempt goes on from, with the logs of the attempt that took it. */
function resumeFromFor(store: Store, e: Experiment, job: number): Pick<TaskFile, 'resumeFrom'> {
  const ck = resumableCheckpoint(store, e.name, job);
  // Batch nodes share the store: theirs are the store's own; a pool host's is restored only on the pool (docs/security.md).
  if (!ck || ck.attempt === null || ck.origin !== LOCAL_ORIGIN) return {};
  const logs = attemptLogPaths(attemptDir(e, job, ck.attempt));
  return { resumeFrom: { id: ck.id, dir: ck.dir, logs: { stdout: logs.stdout, stderr: logs.stderr } } };
}
const REPORT_NAME = /^(\d+)\.(\d+)\.(start|done|ck-[0-9a-f]{12})\.json$/;

/** `<job>.<attempt>.<kind>.json`; a checkpoint's is named by its id (an attempt may take several). */
export function reportName(job: number, attempt: number, tag: 'start' | 'done' | `ck-${string}`): string {
  return `${job}.${attempt}.${tag}.json`;
}

/** The name a report is filed under. */
export function reportTag(r: Report): 'start' | 'done' | `ck-${string}` {
  return r.kind === 'checkpoint' ? (r.checkpoint.id as `ck-${string}`) : r.kind;
}

export function parseReportName(name: string): { job: number; attempt: number; kind: ReportKind; tag: string } | undefined {
  const m = REPORT_NAME.exec(name);
  if (!m) return undefined;
  const tag = m[3]!;
  return { job: Number(m[1]), attempt: Number(m[2]), kind: tag.startsWith('ck-') ? 'checkpoint' : (tag as ReportKind), tag };
}

/** Task files and reports are written whole: temporary name, fsync, rename, fsync of the directory. */
export { writeFileDurableSync as writeFileAtomic } from '../../store/durable.js';

/** Reads at most `cap` bytes; a longer file is refused, not truncated. */
export function readCapped(path: string, cap: number): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size > cap) throw new VmwuError('BAD_TASK_FILE', `${path} is larger than ${cap} bytes`);
    // One byte more than the file claims: a file still growing is caught by the cap below.
    const buf = Buffer.alloc(Math.min(size, cap) + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r <= 0) break;
      n += r;
      if (n > cap) throw new VmwuError('BAD_TASK_FILE', `${path} is larger than ${cap} bytes`);
      if (n === buf.length) break;
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

const TASK_CAP = 4 * 1024 * 1024;
export const REPORT_CAP = 256 * 1024;

function parseWith<T>(schema: z.ZodType<T>, path: string, text: string, what: string): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new VmwuError('BAD_TASK_FILE', `${path}: ${what} is not JSON: ${(e as Error).message}`);
  }
  const r = schema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new VmwuError('BAD_TASK_FILE', `${path}: ${what}: field ${i.path.join('.') || '(top)'}: ${i.message}`, 'task files and reports are written by vmwu; was this one edited, or written by another release?');
  }
  return r.data;
}

export function readTaskFile(path: string): TaskFile {
  let text: string;
  try {
    text = readCapped(path, TASK_CAP);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new VmwuError('NO_TASK_FILE', `task file ${path} not found`, 'the experiment directory must be on a filesystem shared with the submit host, at the same path');
    }
    throw e;
  }
  return parseWith(taskSchema, path, text, 'task file');
}

export function readReport(path: string): Report {
  return parseWith(reportSchema, path, readCapped(path, REPORT_CAP), 'report');
}
