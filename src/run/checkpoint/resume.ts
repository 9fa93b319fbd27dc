import { existsSync, statSync } from 'node:fs';
import { copyFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { VmwuError } from '../../errors.js';
import { qemuIdentity } from '../../vm/host.js';
import type { BlobSource } from '../blob-source.js';
import type { HypervisorDriver } from '../../vm/driver.js';
import type { QemuUser } from '../../vm/qemu-user.js';
import type { BackingImage, DiskSpec, VmSpec } from '../../vm/spec.js';
import { loadVmState } from '../../vm/vm-state.js';
import { readCheckpoint, type CheckpointRecord } from './format.js';
import { copyDisk } from './take.js';
import { checkpointMismatch, verifyCheckpointFiles, type JobTerms, type RestoringHost } from './trust.js';
import type { PhaseClock } from '../phase-clock.js';
import { dataDiskPath, handInstanceTo, instanceWiring, type InstancePaths } from '../instance.js';
import { attachStreams, type Started, type StreamHooks } from '../streams.js';
import { makeOwnMemory } from '../own-memory.js';
import { allSettledOrThrow } from '../../settle.js';

/**
 * A job going on from a checkpoint on this host: the checkpoint accepted (same QEMU build, a record
 * that agrees with the job, its blobs here), then its disks, logs and saved state put back into a new
 * instance.
 */

/** Where this host has the blobs a checkpoint's VM needs (verified copies, by digest). */
export interface ResumeBlobs {
  kernel: string;
  initrd: string;
  root: string;
  /** The datasets' blobs, in the order of the checkpoint's `data<n>` disks. */
  data: string[];
}

/** A saved state loads only into the QEMU build that wrote it: refused here otherwise, with the reason. */
export function requireSameQemu(rec: CheckpointRecord): void {
  const here = qemuIdentity();
  if (rec.qemu !== here) {
    throw new VmwuError('CHECKPOINT_QEMU', `checkpoint ${rec.id} was saved by another QEMU build (${rec.qemu}); this host has ${here}`,
      'restore it on a host with that QEMU: a saved state loads only into the QEMU that wrote it');
  }
}

/** This host's verified copies of the blobs a checkpoint's VM runs on. */
export async function checkpointBlobPaths(rec: CheckpointRecord, source: BlobSource): Promise<ResumeBlobs> {
  const data: string[] = [];
  for (const d of rec.data ?? []) data.push(await source.path(d.digest));
  return { kernel: await source.path(rec.vm.kernel), initrd: await source.path(rec.vm.initrd), root: await source.path(rec.image.root), data };
}

/**
 * The checkpoint in `dir` (its record read already) as this job may go on from
 * it here: its record agrees with the job's and this host's
 * (src/run/checkpoint/trust.ts), its files pass as untrusted images, and this
 * host has its blobs. Throws BAD_CHECKPOINT or CHECKPOINT_QEMU with the reason otherwise.
 */
export async function acceptCheckpoint(dir: string, rec: CheckpointRecord, job: JobTerms, host: RestoringHost, source: BlobSource): Promise<Omit<ResumeFrom, 'logsFrom'>> {
  requireSameQemu(rec);
  const why = checkpointMismatch(rec, job, host);
  if (why) throw new VmwuError('BAD_CHECKPOINT', `checkpoint ${rec.id} does not belong to this job: ${why}`, 'it was damaged or forged; the job cannot go on from it');
  await verifyCheckpointFiles(dir, rec, job);
  return { rec, dir, blobs: await checkpointBlobPaths(rec, source) };
}

/**
 * A checkpoint from another attempt or store, if this host can go on from it;
 * else why not (the job then starts over, and its start record says so).
 */
export async function resumableHere(dir: string, job: JobTerms, host: RestoringHost, source: BlobSource, logsFrom?: ResumeFrom['logsFrom']): Promise<{ resumeFrom: ResumeFrom } | { resumeRefused: string }> {
  try {
    return { resumeFrom: { ...await acceptCheckpoint(dir, readCheckpoint(dir), job, host, source), ...(logsFrom ? { logsFrom } : {}) } };
  } catch (e) {
    return { resumeRefused: `could not go on from the checkpoint here (${(e as Error).message}); the job started over` };
  }
}

export interface ResumeFrom {
  rec: CheckpointRecord;
  dir: string;
  blobs: ResumeBlobs;
  /** The logs of the run that took the checkpoint, when the job goes on as a new attempt with logs of its own. */
  logsFrom?: { stdout: string; stderr: string };
}

/** Which dataset a checkpoint disk id (`data<n>`) is, or undefined for the others. */
function dataIndex(id: string): number | undefined {
  const n = /^data(\d+)$/.exec(id);
  return n ? Number(n[1]) : undefined;
}

/** The instance file each of a checkpoint's disks goes back to, by disk id. */
function instanceFile(p: InstancePaths, id: string): string {
  const files: Record<string, string> = { root: p.overlay, in: p.input, out: p.output, app: p.app, job: p.job };
  const n = dataIndex(id);
  const f = n === undefined ? files[id] : dataDiskPath(p, n);
  if (!f) throw new Error(`a checkpoint disk with the unknown id ${id}`);
  return f;
}

/**
 * A log as it was at the checkpoint: cut back (what the job wrote after it is
 * written again), or, for a new attempt's empty log, begun with the first
 * `bytes` of the log of the attempt that took the checkpoint.
 */
async function logAsAtCheckpoint(path: string, bytes: number, from: string | undefined): Promise<void> {
  const size = existsSync(path) ? statSync(path).size : 0;
  if (size === 0 && from && existsSync(from)) await copyFile(from, path);
  if (existsSync(path) && statSync(path).size > bytes) await truncate(path, bytes);
}

/**
 * Starts a job again from a checkpoint accepted for it (acceptCheckpoint): its
 * disks (and its RAM file, if it has one) copied into the instance's scratch, a VM of the job's own shape waiting
 * for the state, the state loaded, go. Each overlay from the checkpoint sits on
 * this host's blobs by an explicit graph (src/vm/argv.ts), never on what its
 * header names. The guest is mid-job: no agent handshake follows, the job simply continues.
 */
export async function resumeInstance(
  ctx: { id: string; paths: InstancePaths; clock: PhaseClock },
  from: ResumeFrom,
  vm: Pick<VmSpec, 'accel' | 'memoryMiB' | 'cpus' | 'network' | 'cpuModel'>,
  o: { driver: HypervisorDriver; user?: QemuUser; hooks: StreamHooks },
): Promise<Started> {
  const { rec, dir, blobs } = from;
  const p = ctx.paths;
  const parent = rec.parent ? join(p.scratch, 'parent.qcow2') : undefined;
  const root: BackingImage = { path: blobs.root, format: 'qcow2' };
  const disks: DiskSpec[] = rec.vm.disks.map((d) => {
    const n = dataIndex(d.id);
    const backing: BackingImage | undefined = d.id === 'root' ? (parent ? { path: parent, format: 'qcow2', backing: root } : root)
      : n !== undefined ? { path: blobs.data[n]!, format: 'raw' } : undefined;
    return { id: d.id, path: instanceFile(p, d.id), format: d.format, serial: d.serial, ...(d.readOnly ? { readOnly: true } : {}), ...(backing ? { backing } : {}) };
  });
  // Copied, not mapped from the checkpoint: QEMU's user may not read the store,
  // and in a file of its own the RAM makes the job's next checkpoint a copy too.
  const ownMemory = rec.memory ? makeOwnMemory(p, vm.memoryMiB, join(dir, rec.memory)) : undefined;
  await allSettledOrThrow([
    ...(parent ? [copyDisk(join(dir, rec.parent!), parent)] : []),
    ...rec.vm.disks.map((d, n) => copyDisk(join(dir, d.file), disks[n]!.path)),
    ownMemory,
    logAsAtCheckpoint(p.logs.stdout, rec.logged.stdout, from.logsFrom?.stdout),
    logAsAtCheckpoint(p.logs.stderr, rec.logged.stderr, from.logsFrom?.stderr),
  ]);
  const memory = await ownMemory;
  if (o.user) await handInstanceTo(p, o.user);
  ctx.clock.mark('prepared');
  const spec: VmSpec = {
    name: ctx.id, ...vm,
    boot: { kind: 'kernel', kernel: blobs.kernel, initrd: blobs.initrd, cmdline: rec.vm.cmdline }, disks, ...instanceWiring(p),
    ...(rec.vm.tscKhz ? { tscKhz: rec.vm.tscKhz } : {}), user: o.user,
    holdOnShutdown: true, incoming: { state: join(dir, 'state') }, ...(memory ? { memoryFile: { path: memory, shared: true } } : {}),
  };
  const running = await o.driver.launch(spec);
  try {
    const started = attachStreams(running, spec, p, ctx.clock, o.hooks, { stdout: { bytes: rec.logged.stdout }, stderr: { bytes: rec.logged.stderr } });
    await loadVmState(running.qmp, { ignoreShared: Boolean(memory) });
    await running.qmp.execute('cont');
    // The agent said ready long ago, before the checkpoint.
    ctx.clock.mark('ready');
    return { ...started, ...(parent ? { parent } : {}) };
  } catch (e) {
    await running.stop(500);
    throw e;
  }
}
