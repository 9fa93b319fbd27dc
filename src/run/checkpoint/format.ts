import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { displayValue, hasControlChars } from '../../control-chars.js';
import { DATASET_NAME } from '../../data/ref.js';
import { VmwuError } from '../../errors.js';
import type { Digest } from '../../store/blobs.js';
import type { DiskSpec, VmSpec } from '../../vm/spec.js';

/**
 * Checkpoints of running jobs (docs/architecture.md, "Checkpoints"): the VM
 * paused, its device and RAM state saved, its disks copied, all in one directory
 * with a record of what a restore needs: the VM's exact shape, the blobs its root
 * overlay sits on (by digest), the QEMU build that saved it, how much of the
 * logs it had written, and the job's remaining walltime. Any vmwu of a host that
 * sees the directory and has that QEMU can restore it.
 */

/**
 * Format 2: every disk file stands alone (an overlay's backing is cut from its
 * header; the record says what it sits on), so a restore checks each one as an
 * imported image is checked and names what lies below it itself
 * (src/run/checkpoint/trust.ts, docs/security.md).
 * Format 3: the guest's RAM may be a file of its own (`memory`) beside a state
 * that holds only the devices (src/run/own-memory.ts). A vmwu that reads only 2
 * would load such a state into a VM with no RAM: it must refuse it.
 */
export const CHECKPOINT_FORMAT = 3;
/** Formats this vmwu restores. */
const READABLE_FORMATS = [2, 3];

export interface CheckpointDisk {
  id: string;
  /** File name in the checkpoint directory. */
  file: string;
  format: DiskSpec['format'];
  serial: string;
  readOnly: boolean;
}

export interface CheckpointRecord {
  format: number;
  id: string;
  runId: string;
  createdAt: string;
  /** The QEMU build that saved it: only that one loads it. */
  qemu: string;
  stopped: boolean;
  bytes: number;
  /** How long the save took, from pausing the VM to the checkpoint being on the disk. */
  saveMs: number;
  vm: {
    accel: VmSpec['accel'];
    memoryMiB: number;
    cpus: number;
    kernel: Digest;
    initrd: Digest;
    cmdline: string;
    network: boolean;
    tscKhz?: number;
    /** Absent in checkpoints saved with QEMU's default model. */
    cpuModel?: string;
    disks: CheckpointDisk[];
  };
  /** The image at the bottom of the root overlay's chain (a base's root or a unit's top layer). */
  image: { root: Digest; virtualSize: number };
  /** File name of the template root overlay the job's overlay sits on, copied along (a clone's). */
  parent?: string;
  /** File name of the guest's RAM, when it was a file of its own (a checkpointable job's): the state then holds only the devices. */
  memory?: 'memory';
  /** How many bytes of stdout and stderr the run's logs held: a restore cuts them back to this and goes on. */
  logged: { stdout: number; stderr: number };
  /** The datasets its `data<n>` disks are overlays of, in order: a restore points them at this host's copies. */
  data?: { name: string; digest: Digest }[];
  /** The job: enough for a store that never saw the run to go on with it. */
  job: { argv: string[]; params: Record<string, string>; timeoutMs: number; elapsedMs: number; maxOutputBytes: number; keep?: string[] };
}

/** A blob's digest from its path: blob files (store or node cache) are named by their hex digest. */
export function digestOfBlobPath(path: string): Digest {
  const hex = basename(path);
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new VmwuError('CHECKPOINT', `${path} is not a blob: a job that boots from it cannot be checkpointed`);
  return `sha256:${hex}`;
}

/** A checkpoint id: also a directory name in every store that holds it. */
export const CHECKPOINT_ID = /^ck-[0-9a-f]{12}$/;

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/).transform((d) => d as Digest);
/** Text a person may be shown (`vmwu checkpoints`, error messages): one line, no control characters. */
const printable = (max: number) => z.string().max(max).refine((t) => !hasControlChars(t), 'control characters are not allowed');
/** As takeCheckpoint writes it; which date counts is the receiver's (src/run/checkpoint/records.ts). */
const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/);
/** Files of a checkpoint directory: plain names, never a path. */
const fileName = z.string().regex(/^[a-z0-9-]{1,32}(\.(qcow2|img))?$/);

/**
 * A checkpoint.json as read: a checkpoint may come from another host (an SSH
 * pool host being drained), so every field a restore acts on is checked, and
 * its files can only be plain names inside its own directory.
 */
const checkpointRecordSchema = z.object({
  format: z.union([z.literal(2), z.literal(3)]),
  id: z.string().regex(CHECKPOINT_ID),
  runId: z.string().regex(/^[0-9a-f]{6,32}$/),
  createdAt: isoDate,
  qemu: printable(512),
  stopped: z.boolean(),
  bytes: z.number().int().nonnegative(),
  saveMs: z.number().nonnegative(),
  vm: z.object({
    accel: z.enum(['kvm', 'tcg']),
    memoryMiB: z.number().int().positive().max(1024 * 1024),
    cpus: z.number().int().positive().max(1024),
    kernel: digest,
    initrd: digest,
    cmdline: printable(4096),
    network: z.boolean(),
    tscKhz: z.number().int().positive().max(100_000_000).optional(),
    cpuModel: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/).optional(),
    disks: z.array(z.object({
      id: z.string().regex(/^(root|in|out|app|job|data\d{1,2})$/), file: fileName, format: z.enum(['qcow2', 'raw']), serial: z.string().regex(/^[A-Za-z0-9-]{1,20}$/), readOnly: z.boolean(),
    })).min(1).max(105),
  }),
  image: z.object({ root: digest, virtualSize: z.number().int().positive() }),
  parent: z.literal('parent.qcow2').optional(),
  memory: z.literal('memory').optional(),
  logged: z.object({ stdout: z.number().int().nonnegative(), stderr: z.number().int().nonnegative() }),
  data: z.array(z.object({ name: z.string().regex(DATASET_NAME), digest })).max(100).optional(),
  job: z.object({
    argv: z.array(z.string()).min(1), params: z.record(z.string(), z.string()), timeoutMs: z.number().int().positive(), elapsedMs: z.number().int().nonnegative(),
    maxOutputBytes: z.number().int().positive(), keep: z.array(z.string()).optional(),
  }),
}).refine((r) => r.format === 3 || !r.memory, { message: 'a RAM file in a format 2 checkpoint', path: ['memory'] });

/** The files a checkpoint directory holds, by its record: nothing else belongs there. */
export function checkpointFiles(rec: CheckpointRecord): string[] {
  return ['checkpoint.json', 'state', ...rec.vm.disks.map((d) => d.file), ...(rec.parent ? [rec.parent] : []), ...(rec.memory ? [rec.memory] : [])];
}

export function newCheckpointId(): string {
  return `ck-${randomBytes(6).toString('hex')}`;
}

export function readCheckpoint(dir: string): CheckpointRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(dir, 'checkpoint.json'), 'utf8'));
  } catch (e) {
    throw new VmwuError('BAD_CHECKPOINT', `${dir}: no readable checkpoint.json (${(e as Error).message})`);
  }
  const format = (raw as { format?: unknown } | null)?.format;
  if (!READABLE_FORMATS.includes(format as number)) {
    throw new VmwuError('BAD_CHECKPOINT', `${dir}: checkpoint format ${displayValue(String(format))}, this vmwu reads ${READABLE_FORMATS.join(' and ')}`,
      format === 1 ? 'an older vmwu made it, with disks that name files of the host that took it; it cannot be restored safely: start the job again' : undefined);
  }
  const parsed = checkpointRecordSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new VmwuError('BAD_CHECKPOINT', `${join(dir, 'checkpoint.json')}: ${i.path.join('.') || 'record'}: ${i.message}`, 'the checkpoint is damaged or was not written by vmwu');
  }
  return parsed.data;
}
