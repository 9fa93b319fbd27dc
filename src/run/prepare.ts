import { dataDiskSerial, DiskSerial, InputLayout } from '../../guest/protocol.js';
import { lstat, readdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeExt4, makeExt4FromDir } from '../image/ext4.js';
import { createOverlay } from '../image/qemu-img.js';
import type { DiskSpec } from '../vm/spec.js';
import { commandScript, jobEnvScript, type GuestProcess } from './command.js';
import { writeInputDisk, type InputEntry } from './input-disk.js';
import { dataDiskPath, type InstancePaths } from './instance.js';
import { allSettledOrThrow } from '../settle.js';

/**
 * An instance's disks, made before its VM starts: the root overlay on the base or unit, the input and
 * output disks, and the app, job, scratch and dataset disks it asks for.
 */

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += await treeSize(join(dir, name));
  return total;
}

/** Bytes a file or directory takes in a filesystem, roughly (a block per entry). */
async function treeSize(path: string): Promise<number> {
  const st = await lstat(path);
  return st.isDirectory() ? 4096 + (await dirSize(path)) : st.size + 4096;
}

/**
 * A build's job disk: the inputs twice (unpacked, and room for what the build
 * script makes beside them) and a margin. Sparse: the size costs nothing until
 * written. Pure.
 */
export function jobDiskBytes(inputBytes: number): number {
  return 2 * inputBytes + 1024 ** 3;
}

export interface PrepareRequest {
  id: string;
  argv: string[];
  params?: Record<string, string>;
  app?: string;
  inputs?: InputEntry[];
  /** The script beside the command (JobRequest.script). */
  script?: string;
  maxOutputBytes: number;
  /** Extra VMWU_* variables for the agent. */
  vmwuEnv?: Record<string, string>;
  /** Build mode: the guest's /job is a disk of its own, not part of the root disk the build keeps. */
  jobDisk?: boolean;
  /** Build mode with a layer cut: the command the guest runs after it (src/run/layer-cut.ts). */
  argvAfterCut?: string[];
  /** Datasets, read-only at /data/NAME: each a qcow2 overlay over its blob, of `virtualSize`. */
  data?: DataDisk[];
  /** `--scratch`: the job disk, this big (sparse), holds the work dir. */
  scratchBytes?: number;
  /** `--root-size`: the root overlay's virtual size, when larger than the image's (the agent grows the filesystem). */
  rootBytes?: number;
  /** The job's standard input: a host file (sent on the input disk) or a file in the work dir. */
  stdin?: JobStdin;
  /** A container image's process (env, dir, user) that the command runs in. */
  process?: GuestProcess;
}

export interface DataDisk {
  name: string;
  path: string;
  virtualSize: number;
}

export type JobStdin = { host: string } | { work: string };

/** Where the command finds its stdin, relative to the work dir (guest/agent runs it there). Pure. */
export function stdinPath(stdin: JobStdin): string {
  return 'host' in stdin ? `../in/${InputLayout.stdin}` : stdin.work;
}

/**
 * The virtual size of a dataset disk: at least 64 GiB, in 64 GiB steps, so
 * datasets of most sizes make one template shape (a read-only disk cannot be
 * resized after a restore). Sparse and read-only: the size costs nothing. Pure.
 */
export function dataDiskBytes(imageBytes: number): number {
  const step = 64 * 1024 ** 3;
  return Math.max(1, Math.ceil(imageBytes / step)) * step;
}

/** The job disk of a --scratch run: the scratch asked for, plus room for the inputs unpacked beside it. Pure. */
export function scratchDiskBytes(scratchBytes: number, inputBytes: number): number {
  return scratchBytes + 2 * inputBytes + 64 * 1024 ** 2;
}

/** The job disks of an instance, in the order every VM of one shape must have them. Pure. */
export function instanceDisks(p: Pick<InstancePaths, 'scratch' | 'overlay' | 'input' | 'output' | 'app' | 'job'>, app: boolean, job = false, data = 0): DiskSpec[] {
  const disks: DiskSpec[] = [
    { id: 'root', path: p.overlay, format: 'qcow2', serial: DiskSerial.root },
    { id: 'in', path: p.input, format: 'raw', serial: DiskSerial.input, readOnly: true },
    { id: 'out', path: p.output, format: 'raw', serial: DiskSerial.output },
  ];
  if (app) disks.push({ id: 'app', path: p.app, format: 'raw', serial: DiskSerial.app, readOnly: true });
  if (job) disks.push({ id: 'job', path: p.job, format: 'raw', serial: DiskSerial.job });
  for (let n = 0; n < data; n++) disks.push({ id: `data${n}`, path: dataDiskPath(p, n), format: 'qcow2', serial: dataDiskSerial(n), readOnly: true });
  return disks;
}

async function inputsSize(inputs: InputEntry[]): Promise<number> {
  let total = 0;
  for (const i of inputs) total += await treeSize(typeof i === 'string' ? i : i.path);
  return total;
}

/**
 * Makes an instance's disks, all rootless and independent of the base's size: a
 * qcow2 overlay on the image to boot (the base's root or a unit's top layer; never
 * a copy), the input disk, a sparse output disk, the app disk when there is an
 * app, and a build's empty job disk.
 */
/** What the input disk carries besides the inputs: the job's environment, its command (and a build's after its cut), its stdin and script. Pure. */
function inputDiskFiles(image: { virtualSize: number }, req: PrepareRequest): Parameters<typeof writeInputDisk>[1] {
  const params = req.params ?? {};
  const data = req.data ?? [];
  const vmwuEnv = {
    RUN_ID: req.id, ...req.vmwuEnv, ...Object.fromEntries(data.map((d, n) => [`DATA_${n}`, d.name])),
    ...(req.scratchBytes ? { SCRATCH: '1' } : {}), ...(req.rootBytes && req.rootBytes > image.virtualSize ? { ROOT_GROW: '1' } : {}),
  };
  return {
    env: jobEnvScript(params, vmwuEnv), cmd: commandScript(req.argv, params, { ...(req.stdin ? { stdin: stdinPath(req.stdin) } : {}), process: req.process }),
    ...(req.argvAfterCut ? { cmdAfterCut: commandScript(req.argvAfterCut, params, { process: req.process }) } : {}),
    ...(req.stdin && 'host' in req.stdin ? { stdin: req.stdin.host } : {}),
    ...(req.script !== undefined ? { script: req.script } : {}),
  };
}

/** The output disk of a job whose outputs may hold `maxOutputBytes`: room beside them for meta/ and the archive's headers. */
export function outputDiskBytes(maxOutputBytes: number): number {
  return maxOutputBytes + 64 * 1024 ** 2;
}

/**
 * The job's input and output disks, written into the files at `p` (truncated,
 * never replaced: a warm clone's QEMU has them open already).
 */
export async function writeJobDisks(image: { virtualSize: number }, req: PrepareRequest, p: Pick<InstancePaths, 'input' | 'output'>): Promise<void> {
  await allSettledOrThrow([
    writeInputDisk(p.input, inputDiskFiles(image, req), req.inputs ?? []),
    // Sparse: a generous size costs nothing until the guest writes, so nobody guesses output sizes.
    writeFile(p.output, '').then(() => truncate(p.output, outputDiskBytes(req.maxOutputBytes))),
  ]);
}

export async function prepareInstance(image: { root: string; virtualSize: number }, req: PrepareRequest, p: InstancePaths): Promise<DiskSpec[]> {
  // All settle before a failure is reported: a disk still being written must not race the clean-up.
  const data = req.data ?? [];
  await allSettledOrThrow([
    createOverlay(p.overlay, image.root, 'qcow2', Math.max(image.virtualSize, req.rootBytes ?? 0)),
    writeJobDisks(image, req, p),
    req.app ? dirSize(req.app).then((n) => makeExt4FromDir(p.app, req.app!, Math.ceil(n * 1.2) + 16 * 1024 ** 2, 'vmwu-app')) : undefined,
    req.jobDisk || req.scratchBytes
      ? inputsSize(req.inputs ?? []).then((n) => makeExt4(p.job, req.scratchBytes ? scratchDiskBytes(req.scratchBytes, n) : jobDiskBytes(n), 'vmwu-job'))
      : undefined,
    ...data.map((d, n) => createOverlay(dataDiskPath(p, n), d.path, 'raw', d.virtualSize)),
  ]);
  return instanceDisks(p, Boolean(req.app), Boolean(req.jobDisk || req.scratchBytes), data.length);
}

