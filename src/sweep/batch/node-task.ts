import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { loadConfig } from '../../config.js';
import { PRIVATE_UMASK } from '../../store/privacy.js';
import { isVmwuError } from '../../errors.js';
import { nodeBlobCache } from '../../run/blob-source.js';
import { PhaseClock } from '../../run/phase-clock.js';
import { attemptLogPaths, instancePaths, makeInstanceDirs } from '../../run/instance.js';
import { instanceDir, openNodeDirs } from '../../run/node-dirs.js';
import { selfIdentity } from '../../store/process-identity.js';
import { templateCache } from '../../run/fast-start/template.js';
import { jobTermsOf, resolveDatasets, resolveImage, resumeHere } from '../../run/host-setup.js';
import { newRunId, type JobRequest, type RunResult } from '../../run/job-request.js';
import { runInstance } from '../../run/instance-run.js';
import type { Digest } from '../../store/blobs.js';
import { decideAccel, type VerdictCache } from '../../vm/accel.js';
import { qemuUser } from '../../vm/qemu-user.js';
import type { CheckpointRecord } from '../../run/checkpoint/format.js';
import { checkpointBlobs } from '../../run/checkpoint/records.js';
import type { InstanceControl } from '../../run/run-control.js';
import { periodicCheckpoints } from '../attempt-checkpoints.js';
import { jobExtras } from '../../request/resolve.js';
import { readTaskFile, reportName, reportTag, writeFileAtomic, type Report, type TaskFile } from './task-files.js';
import { runHubTask, runPeerTask, segmentIndexHere, type VmPart } from './segment-task.js';

/** One job attempt on a batch system's compute node (`vmwu sweep-task`): run from its task file and reported in files, without opening the store's database. */

/** Accelerator verdicts of a node, in its cache directory: a compute node has no database to keep them in. */
function fileVerdictCache(path: string): VerdictCache {
  const read = (): Record<string, string> => {
    try {
      return JSON.parse(readFileSync(path, 'utf8')) as Record<string, string>;
    } catch {
      return {};
    }
  };
  return {
    get: (k) => read()[k],
    put: (k, v) => writeFileAtomic(path, JSON.stringify({ ...read(), [k]: v })),
  };
}

export interface NodeTaskOptions {
  /** The batch system's id of this task, for the record. */
  batchId?: string;
  signal?: AbortSignal;
  /** Called once the job runs, with what can be asked of it (a checkpoint, e.g. when Slurm says the allocation ends). */
  onControl?(control: InstanceControl): void;
}

/**
 * `vmwu sweep-task --task FILE`: what a batch task runs on a compute node. It
 * reads everything from the task file the submitter wrote, never opens the
 * store's database, boots the job in node-local scratch from node-local verified
 * copies of the blobs, writes the outputs into the attempt's directory (logs live,
 * as the guest writes them), and reports `start` and `done` as files that the
 * submitter ingests. Returns the exit code for the batch system, and the result
 * (null when another copy of the task had claimed the attempt: it runs once).
 */
export async function runNodeTask(taskPath: string, opts: NodeTaskOptions = {}): Promise<{ code: number; result: RunResult | null }> {
  // It writes into the store without opening it: private as openStore makes it (src/store/privacy.ts).
  process.umask(PRIVATE_UMASK);
  const task = readTaskFile(taskPath);
  const vmIndex = task.segment ? segmentIndexHere(task.segment.size) : 0;
  if (vmIndex > 0) return runPeerTask(task, vmIndex, opts, (vm, id, clock) => runAttemptHere(task, id, clock, opts, vm));
  const clock = new PhaseClock();
  clock.mark('start');
  const id = newRunId();
  const head = {
    experiment: task.experiment, job: task.job, attempt: task.attempt, host: hostname(), owner: selfIdentity(),
    batchId: opts.batchId ?? null, runId: id,
  };
  const report = (r: Report) => writeFileAtomic(join(task.reportsDir, reportName(task.job, task.attempt, reportTag(r))), JSON.stringify(r) + '\n');
  mkdirSync(task.reportsDir, { recursive: true });
  mkdirSync(dirname(task.outDir), { recursive: true });
  // The task claims its attempt by creating its directory (atomic, also over NFS): a second
  // copy of it (a batch system that reran it by itself, a resubmission) does nothing.
  try {
    mkdirSync(task.outDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    process.stderr.write(`vmwu: job ${task.job} attempt ${task.attempt} of ${task.experiment} was already taken by another task (${task.outDir} exists); nothing to do\n`);
    return { code: 0, result: null };
  }
  let result: RunResult;
  try {
    report({ kind: 'start', ...head, at: new Date().toISOString() });
    const onCheckpoint = (rec: CheckpointRecord, dir: string) => report({
      kind: 'checkpoint', ...head, at: new Date().toISOString(),
      checkpoint: { id: rec.id, dir, createdAt: rec.createdAt, bytes: rec.bytes, qemu: rec.qemu, stopped: rec.stopped, blobs: checkpointBlobs(rec) },
    });
    result = task.segment
      ? await runHubTask(task, (vm) => runAttemptHere(task, id, clock, opts, vm))
      : await runAttemptHere(task, id, clock, { ...opts, onCheckpoint });
  } catch (e) {
    const ve = isVmwuError(e) ? e : undefined;
    result = {
      id, status: 'error', exitCode: null, accel: 'tcg', outDir: task.outDir, phases: clock.phases(), totalMs: clock.total(),
      error: { code: ve?.code ?? 'INTERNAL', message: (e as Error).message, ...(ve?.hint ? { hint: ve.hint } : {}) },
    };
  }
  report({ kind: 'done', ...head, at: new Date().toISOString(), result });
  return { code: result.status === 'succeeded' ? 0 : 1, result };
}

/**
 * Checkpoint the job and stop it when asked (the allocation ends soon), whether
 * it already runs or is still starting: then as soon as it runs.
 */
export function stopAtCheckpointWhenAsked(say: (m: string) => void): { ask(): void; onControl(c: InstanceControl): void } {
  let control: InstanceControl | undefined;
  let asked = false;
  const stop = () => {
    if (!control) return;
    say('the allocation ends soon: checkpointing the job');
    control.checkpoint({ stop: true }).catch((e: unknown) => say(`checkpoint failed: ${(e as Error).message}`));
  };
  return {
    ask: () => {
      asked = true;
      stop();
    },
    onControl: (c) => {
      control = c;
      if (asked) stop();
    },
  };
}

async function runAttemptHere(task: TaskFile, id: string, clock: PhaseClock,
  opts: NodeTaskOptions & { onCheckpoint?(rec: CheckpointRecord, dir: string): void }, vm?: VmPart): Promise<RunResult> {
  const outDir = vm?.outDir ?? task.outDir;
  const config = await loadConfig(task.store);
  const dirs = openNodeDirs(config.scratch, task.store);
  const source = nodeBlobCache(join(task.store, 'blobs', 'sha256'), dirs.cache, { user: qemuUser() });
  const base = { ...task.base, kernel: task.base.kernel as Digest | null, initrd: task.base.initrd as Digest | null, root: task.base.root as Digest };
  const image = await resolveImage(source, base, task.layers as Digest[]);
  const probe = image.boot.kind === 'kernel' ? { kernel: image.boot.kernel, initrd: image.boot.initrd, cmdline: base.cmdline, digest: base.kernel! } : undefined;
  const verdicts = fileVerdictCache(join(dirs.cache, 'accel.json'));
  const accel = await decideAccel(verdicts, probe);
  const p = instancePaths(instanceDir(dirs, id), attemptLogPaths(outDir), id);
  makeInstanceDirs(p);
  const templates = config.fastStart ? templateCache(dirs, task.store, qemuUser()) : undefined;
  const extras = jobExtras(task.resources);
  const req: JobRequest = {
    ...task.launch, ...(vm?.argv ? { argv: vm.argv, script: undefined } : {}), ...(vm ? { segment: vm.segment } : {}), ...extras, network: false, process: task.process,
    memoryMiB: task.resources.memoryMiB, cpus: task.resources.cpus, timeoutMs: task.resources.timeoutMs, maxOutputBytes: task.resources.maxOutputBytes, cold: task.resources.cold,
  };
  const data = await resolveDatasets(source, extras.datasets);
  const resume = task.resumeFrom ? await resumeHere(task.resumeFrom.dir, jobTermsOf(image, req, data), accel.accel, source, task.resumeFrom.logs) : {};
  const periodic = periodicCheckpoints(task.resources.checkpointEveryMs, (m) => process.stderr.write(`vmwu: ${m}\n`));
  try {
    return await runInstance({
      id, image, accel, paths: p, outDir, clock, ...(templates ? { templates } : {}), ...resume, cpuCache: verdicts, data,
      checkpoints: { dir: join(task.store, 'checkpoints'), onSaved: opts.onCheckpoint },
    }, req, {
      signal: vm?.signal && opts.signal ? AbortSignal.any([opts.signal, vm.signal]) : vm?.signal ?? opts.signal,
      onEvent: vm?.onEvent,
      onControl: (c) => {
        periodic.onControl(c);
        opts.onControl?.(c);
      },
    });
  } finally {
    periodic.stop();
  }
}
