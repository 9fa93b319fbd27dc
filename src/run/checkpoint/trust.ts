import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { VmwuError } from '../../errors.js';
import { checkUntrustedImage } from '../../image/untrusted-image.js';
import type { Digest } from '../../store/blobs.js';
import type { Accel, DiskSpec } from '../../vm/spec.js';
import { stateCap } from '../../vm/vm-state.js';
import type { CheckpointRecord } from './format.js';
import { instanceDisks, outputDiskBytes } from '../prepare.js';
import { TemplateDiskBytes, WAIT_ARG } from '../fast-start/template.js';

/**
 * Whether a checkpoint may be restored as a given job (docs/security.md,
 * "Checkpoints from other hosts"). A checkpoint can come from a host that is not
 * trusted with more than the job it ran, so its record decides nothing: the
 * job's own record decides the VM (network, memory, CPUs, walltime, what it
 * boots, its datasets), and a checkpoint that says otherwise is refused; this
 * host decides the accelerator, the CPU model and the QEMU build. Its files are
 * bounded by the job's resources and checked as imported images are.
 */

/** What the job's own record says: the submitter's request, a run's row, a batch task. */
export interface JobTerms {
  memoryMiB: number;
  cpus: number;
  network: boolean;
  timeoutMs: number;
  maxOutputBytes: number;
  image: { kernel: Digest; initrd: Digest; root: Digest; virtualSize: number; cmdline: string };
  /** The root disk's size, when the job asked for more than the image's (`--root-size`). */
  rootBytes?: number;
  /** Its datasets in order, with the virtual size of each one's disk (src/run/prepare.ts dataDiskBytes). */
  datasets: { digest: Digest; diskBytes: number }[];
  app: boolean;
  /** `--scratch`: the job disk's requested size. */
  scratchBytes?: number;
  /** The inputs' size, where the receiver knows it: it bounds the input disk. */
  inputBytes?: number;
}

/** What only the host that restores it can say (its QEMU build: src/run/checkpoint/resume.ts requireSameQemu). */
export interface RestoringHost {
  accel: Accel;
  cpuModel: string;
}

/** The disks of the job's VM, as a restore must find them: ids, formats, serials, read-only or not. Pure. */
export function expectedDisks(job: Pick<JobTerms, 'app' | 'scratchBytes' | 'datasets'>): Omit<DiskSpec, 'path'>[] {
  const none = { scratch: '', overlay: '', input: '', output: '', app: '', job: '' };
  return instanceDisks(none, job.app, Boolean(job.scratchBytes), job.datasets.length).map(({ path: _path, ...d }) => d);
}

/**
 * Why the checkpoint cannot be restored as `job` (on `host`, when the receiver
 * restores it), or undefined. Pure.
 */
export function checkpointMismatch(rec: CheckpointRecord, job: JobTerms, host?: RestoringHost): string | undefined {
  const differs = (what: string, got: unknown, want: unknown) => `its ${what} (${JSON.stringify(got)}) is not the job's (${JSON.stringify(want)})`;
  const v = rec.vm;
  if (v.memoryMiB !== job.memoryMiB) return differs('memory in MiB', v.memoryMiB, job.memoryMiB);
  if (v.cpus !== job.cpus) return differs('CPU count', v.cpus, job.cpus);
  if (v.network !== job.network) return differs('network', v.network, job.network);
  if (rec.job.timeoutMs !== job.timeoutMs) return differs('walltime in ms', rec.job.timeoutMs, job.timeoutMs);
  if (rec.job.elapsedMs > job.timeoutMs) return `it claims ${rec.job.elapsedMs} ms elapsed, more than the job's walltime`;
  if (rec.job.maxOutputBytes !== job.maxOutputBytes) return differs('output cap', rec.job.maxOutputBytes, job.maxOutputBytes);
  if (v.kernel !== job.image.kernel) return differs('kernel', v.kernel, job.image.kernel);
  if (v.initrd !== job.image.initrd) return differs('initrd', v.initrd, job.image.initrd);
  if (rec.image.root !== job.image.root) return differs('image', rec.image.root, job.image.root);
  if (rec.image.virtualSize !== job.image.virtualSize) return differs('image size', rec.image.virtualSize, job.image.virtualSize);
  if (v.cmdline !== job.image.cmdline && v.cmdline !== `${job.image.cmdline} ${WAIT_ARG}`.trim()) return differs('kernel command line', v.cmdline, job.image.cmdline);
  const data = (rec.data ?? []).map((d) => d.digest);
  if (data.length !== job.datasets.length || data.some((d, i) => d !== job.datasets[i]!.digest)) return differs('datasets', data, job.datasets.map((d) => d.digest));
  const want = expectedDisks(job);
  const got = v.disks.map(({ id, format, serial, readOnly }) => ({ id, format, serial, readOnly }));
  const wantNorm = want.map(({ id, format, serial, readOnly }) => ({ id, format, serial, readOnly: Boolean(readOnly) }));
  if (JSON.stringify(got) !== JSON.stringify(wantNorm)) return differs('disks', got, wantNorm);
  if (host) {
    if (v.accel !== host.accel) return `it was saved under ${v.accel}; this host runs ${host.accel}`;
    // Checkpoints saved before vmwu chose a model name none: QEMU's default then.
    if (v.cpuModel !== undefined && v.cpuModel !== host.cpuModel) return `its CPU model ${JSON.stringify(v.cpuModel)} is not this host's (${host.cpuModel})`;
  }
  return undefined;
}

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** The most each file of a checkpoint of `job` may be (its apparent size, or a disk's virtual size): what the job itself could have made. Pure. */
export function checkpointFileLimits(job: JobTerms): { state: number; deviceState: number; memory: number; disk(id: string): { exact?: number; max?: number } } {
  const inputs = Math.max(TemplateDiskBytes.input, 2 * (job.inputBytes ?? 0) + GiB);
  return {
    state: stateCap(job.memoryMiB),
    // Beside a RAM file of its own, the stream holds the devices alone.
    deviceState: stateCap(0),
    memory: job.memoryMiB * MiB,
    disk(id) {
      if (id === 'root') return { exact: Math.max(job.image.virtualSize, job.rootBytes ?? 0) };
      if (id === 'parent') return { exact: job.image.virtualSize };
      const n = /^data(\d+)$/.exec(id);
      if (n) return { exact: job.datasets[Number(n[1])]?.diskBytes ?? 0 };
      if (id === 'out') return { max: outputDiskBytes(job.maxOutputBytes) };
      if (id === 'job') return { max: (job.scratchBytes ?? 0) + 2 * inputs + 64 * MiB };
      return { max: inputs };
    },
  };
}

/**
 * Checks a checkpoint's files in `dir` against `job`: the state no larger than
 * the job's RAM can make it, a RAM file exactly the job's RAM, and every disk a standalone image of the format the
 * job's disk has (checked as `vmwu base add` checks an image: read by vmwu
 * first, then by qemu-img under limits, never following a backing or data file)
 * and of the job's size. Throws BAD_CHECKPOINT naming the file.
 */
export async function verifyCheckpointFiles(dir: string, rec: CheckpointRecord, job: JobTerms): Promise<void> {
  const limits = checkpointFileLimits(job);
  const bad = (file: string, why: string) => new VmwuError('BAD_CHECKPOINT', `checkpoint ${rec.id}: ${file}: ${why}`, 'the checkpoint was damaged or forged; the job cannot go on from it');
  const state = await lstat(join(dir, 'state')).catch(() => undefined);
  if (!state?.isFile()) throw bad('state', 'missing or not a regular file');
  const stateMax = rec.memory ? limits.deviceState : limits.state;
  if (state.size > stateMax) throw bad('state', `${state.size} bytes, more than a VM of ${job.memoryMiB} MiB can save (${stateMax})`);
  if (rec.memory) {
    // The guest's RAM, as the guest left it: it goes back into a guest of the job's size and nowhere else.
    const memory = await lstat(join(dir, rec.memory)).catch(() => undefined);
    if (!memory?.isFile()) throw bad(rec.memory, 'missing or not a regular file');
    if (memory.size !== limits.memory) throw bad(rec.memory, `${memory.size} bytes; the job's RAM is ${limits.memory}`);
  }
  const formats = new Map(expectedDisks(job).map((d) => [d.id, d.format]));
  const files = [...rec.vm.disks.map((d) => ({ id: d.id, file: d.file })), ...(rec.parent ? [{ id: 'parent', file: rec.parent }] : [])];
  for (const { id, file } of files) {
    const format = id === 'parent' ? 'qcow2' : formats.get(id);
    if (!format) throw bad(file, `the job has no disk ${id}`);
    let size: number;
    try {
      size = (await checkUntrustedImage(join(dir, file), `checkpoint ${rec.id}: ${file}`, format)).virtualSize;
    } catch (e) {
      if (e instanceof VmwuError && e.code === 'BAD_IMAGE') throw new VmwuError('BAD_CHECKPOINT', e.message, e.hint);
      throw e;
    }
    const { exact, max } = limits.disk(id);
    if (exact !== undefined && size !== exact) throw bad(file, `a disk of ${size} bytes; the job's is ${exact}`);
    if (max !== undefined && size > max) throw bad(file, `a disk of ${size} bytes, more than the job's can be (${max})`);
  }
}
