import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { VmwuError } from '../../errors.js';
import { allSettledOrThrow } from '../../settle.js';
import { runTool } from '../../image/tool.js';
import { syncDir, syncFile, writeFileDurableSync } from '../../store/durable.js';
import { qemuIdentity } from '../../vm/host.js';
import type { QemuUser } from '../../vm/qemu-user.js';
import { saveVmState, stateCap } from '../../vm/vm-state.js';
import type { InstancePaths } from '../instance.js';
import type { InstanceControl } from '../run-control.js';
import type { Started } from '../streams.js';
import { CHECKPOINT_FORMAT, digestOfBlobPath, newCheckpointId, type CheckpointDisk, type CheckpointRecord } from './format.js';

/** Taking a checkpoint of a running instance, and what a running instance answers when asked for one. */

/** A sparse copy (a sparse output disk stays sparse), by reflink where the filesystem has it. */
export async function copyDisk(src: string, dest: string): Promise<void> {
  await runTool('cp', ['--sparse=always', '--reflink=auto', src, dest]);
}

/**
 * A copy of an overlay, standing alone: the header's backing file (a path of
 * this host) is cut, data untouched. What it sits on is in the record instead,
 * by digest, and a restore puts it back by name (src/vm/argv.ts).
 */
async function copyOverlay(src: string, dest: string): Promise<void> {
  await copyDisk(src, dest);
  await runTool('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', '', dest]);
}

export interface CheckpointSubject {
  runId: string;
  started: Started;
  paths: InstancePaths;
  image: { root: string; virtualSize: number };
  user?: QemuUser;
  job: CheckpointRecord['job'];
  /** The job's datasets (their blobs, by path). */
  data?: { name: string; path: string }[];
}

/** Bytes already on their way from the guest's log ports when it paused get this long to land. */
const LOG_SETTLE_MS = 50;

/**
 * Pauses the VM, saves its state (and its own RAM file, if it has one) and copies its disks into `<dir>/<id>/`
 * (written as `<id>.tmp`, fsynced, renamed: a checkpoint directory is whole or
 * absent), then lets the VM go on unless `stop`; a stopped VM is left paused for
 * the caller to end.
 */
export async function takeCheckpoint(dir: string, s: CheckpointSubject, o: { stop: boolean }): Promise<CheckpointRecord> {
  const id = newCheckpointId();
  const tmp = join(dir, `${id}.tmp`);
  const final = join(dir, id);
  const { vm, spec } = s.started;
  const boot = spec.boot;
  if (boot.kind !== 'kernel') throw new VmwuError('CHECKPOINT', 'jobs of firmware-booted images cannot be checkpointed');
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  let paused = false;
  const t0 = performance.now();
  try {
    // A job whose RAM is a file of its own (src/run/own-memory.ts): the stream holds the devices alone, and the file is copied.
    const ownMemory = spec.memoryFile?.shared ? spec.memoryFile.path : undefined;
    await saveVmState(vm.qmp, join(tmp, 'state'), {
      socket: join(s.paths.sockDir, 'state.sock'), user: s.user, ignoreShared: Boolean(ownMemory), maxBytes: stateCap(ownMemory ? 0 : spec.memoryMiB),
    });
    paused = true;
    // The copies go side by side, and the logs settle meanwhile: the guest is paused for the longest copy alone.
    const disks: CheckpointDisk[] = spec.disks.map((d) => ({ id: d.id, file: `${d.id}.${d.format === 'qcow2' ? 'qcow2' : 'img'}`, format: d.format, serial: d.serial, readOnly: Boolean(d.readOnly) }));
    const copies = allSettledOrThrow([
      ...(ownMemory ? [copyDisk(ownMemory, join(tmp, 'memory'))] : []),
      ...spec.disks.map((d, n) => (d.format === 'qcow2' ? copyOverlay : copyDisk)(d.path, join(tmp, disks[n]!.file))),
      ...(s.started.parent ? [copyOverlay(s.started.parent, join(tmp, 'parent.qcow2'))] : []),
    ]);
    await new Promise((r) => setTimeout(r, LOG_SETTLE_MS));
    const logged = { stdout: s.started.logged.stdout.bytes, stderr: s.started.logged.stderr.bytes };
    await copies;
    if (!o.stop) {
      await vm.qmp.execute('cont');
      paused = false;
    }
    const files = [...disks.map((d) => d.file), 'state', ...(s.started.parent ? ['parent.qcow2'] : []), ...(ownMemory ? ['memory'] : [])];
    await Promise.all(files.map((f) => syncFile(join(tmp, f))));
    let bytes = 0;
    for (const f of files) bytes += (await stat(join(tmp, f))).blocks * 512;
    const rec: CheckpointRecord = {
      format: CHECKPOINT_FORMAT, id, runId: s.runId, createdAt: new Date().toISOString(), qemu: qemuIdentity(), stopped: o.stop, bytes, saveMs: Math.round(performance.now() - t0),
      vm: {
        accel: spec.accel, memoryMiB: spec.memoryMiB, cpus: spec.cpus, kernel: digestOfBlobPath(boot.kernel), initrd: digestOfBlobPath(boot.initrd),
        cmdline: boot.cmdline, network: spec.network, ...(spec.tscKhz ? { tscKhz: spec.tscKhz } : {}), ...(spec.cpuModel ? { cpuModel: spec.cpuModel } : {}), disks,
      },
      image: { root: digestOfBlobPath(s.image.root), virtualSize: s.image.virtualSize },
      ...(s.started.parent ? { parent: 'parent.qcow2' } : {}), ...(ownMemory ? { memory: 'memory' as const } : {}),
      logged, job: s.job,
      ...(s.data?.length ? { data: s.data.map((d) => ({ name: d.name, digest: digestOfBlobPath(d.path) })) } : {}),
    };
    writeFileDurableSync(join(tmp, 'checkpoint.json'), JSON.stringify(rec, null, 2) + '\n');
    await rename(tmp, final);
    await syncDir(dir);
    return rec;
  } catch (e) {
    if (paused && !o.stop) await vm.qmp.execute('cont').catch(() => undefined);
    throw e;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * What can be asked of a running instance (src/run/run-control.ts): one
 * checkpoint at a time, never of a job that is ending; with `stop`, the caller
 * ends the VM once it is saved.
 */
export function checkpointControl(o: {
  checkpoints: { dir: string; onSaved?(rec: CheckpointRecord, dir: string): void } | undefined;
  subject(): CheckpointSubject;
  ending(): boolean;
  onStopped(rec: CheckpointRecord): void;
}): InstanceControl {
  let busy = false;
  return {
    async checkpoint({ stop }) {
      if (!o.checkpoints) throw new VmwuError('CHECKPOINT', 'this job has nowhere to keep checkpoints');
      if (o.ending()) throw new VmwuError('NOT_RUNNING', 'the job is ending');
      if (busy) throw new VmwuError('CHECKPOINT_BUSY', 'a checkpoint of this job is being taken', 'wait for it');
      busy = true;
      try {
        const rec = await takeCheckpoint(o.checkpoints.dir, o.subject(), { stop });
        o.checkpoints.onSaved?.(rec, join(o.checkpoints.dir, rec.id));
        if (stop) o.onStopped(rec);
        return rec;
      } finally {
        busy = false;
      }
    },
  };
}
