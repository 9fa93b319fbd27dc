import { z } from 'zod';
import { guestProcessSchema } from '../../run/command.js';
import { DATASET_NAME } from '../../data/ref.js';
import { CHECKPOINT_ID } from '../../run/checkpoint/format.js';
import { CPU_FEATURE } from '../../vm/cpu.js';
import { runResultSchema, type CheckedRunResult } from '../../run/result-schema.js';
import { MAX_SEGMENT_VMS } from '../../vm/job-segment.js';
import { SCRIPT_MAX_CHARS } from '../../sweep/script.js';

/**
 * What the submitting vmwu and `vmwu remote` on an SSH host say to each other.
 * Both sides are vmwu, but not necessarily the same release: the protocol number
 * is checked when a host is added and on every connection.
 */

export const REMOTE_PROTOCOL = 4;

export const remoteInfoSchema = z.object({
  protocol: z.number().int(),
  version: z.string(),
  /** QEMU's version, or null when the host has none. */
  qemu: z.string().nullable(),
  arch: z.string(),
  cores: z.number().int().positive(),
  memMiB: z.number(),
  availableMemMiB: z.number(),
  store: z.string(),
  freeBytes: z.number(),
  /** CPU features its guests get (src/vm/cpu-probe.ts); placement skips it for units that need others. */
  cpuFeatures: z.array(z.string()).optional(),
});
export type RemoteInfo = z.infer<typeof remoteInfoSchema>;

/** The reply of a command that only says it succeeded (`gc`, `register-base`). */
export const okSchema = z.object({}).passthrough();

/** Where the submitter's SSH connection forwards a VM's segment on the host: a socket of a random name that sshd makes 0600 for the login user. */
export const SEGMENT_FORWARD = /^\/tmp\/vmwu-segment-[0-9a-f]{32}\.sock$/;

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);

export const haveSchema = z.object({
  have: z.array(digest),
  /** Bytes already received of blobs that are not complete yet: a transfer resumes there. */
  partial: z.record(z.string(), z.number().int().nonnegative()),
});
export type HaveReply = z.infer<typeof haveSchema>;

/** One job for `vmwu remote run`, sent as request.json at the head of its input tar. */
export const remoteRunSchema = z.object({
  base: digest,
  layers: z.array(digest),
  argv: z.array(z.string()).min(1),
  params: z.record(z.string(), z.string()),
  /** On a base pulled from a container image: the process its jobs run in. */
  process: guestProcessSchema.optional(),
  /** The job script beside its command (JobRequest.script). */
  script: z.string().max(SCRIPT_MAX_CHARS).optional(),
  /** Names of the inputs, each sent under inputs/NAME. */
  inputs: z.array(z.string().regex(/^[^/\0]+$/).refine((n) => n !== '.' && n !== '..', 'not a file name')),
  memoryMiB: z.number().int().positive(),
  cpus: z.number().int().positive(),
  timeoutMs: z.number().int().positive(),
  maxOutputBytes: z.number().int().positive(),
  cold: z.boolean().optional(),
  /** Its RAM is a file of its own: the job will be checkpointed (JobRequest.checkpointable). */
  checkpointable: z.boolean().optional(),
  cpuNeeds: z.array(z.string().regex(CPU_FEATURE)).max(128).optional(),
  /** Datasets by digest; their blobs travel with the unit's, once per host. */
  datasets: z.array(z.object({ name: z.string().regex(DATASET_NAME), digest })).max(100).optional(),
  scratchBytes: z.number().int().positive().optional(),
  rootBytes: z.number().int().positive().optional(),
  /** A work-dir file, or `sent`: the job's archive holds it as `stdin`. */
  stdin: z.union([z.object({ work: z.string().min(1).max(4096) }), z.object({ sent: z.literal(true) })]).optional(),
  /**
   * One VM of a multi-VM job whose hub is the submitter's: its number, the job's
   * size and token, and the socket on this host that the submitter's SSH
   * connection forwards to the hub (src/executors/ssh/multi-vm-attempt.ts).
   */
  segment: z.object({
    index: z.number().int().min(0).max(MAX_SEGMENT_VMS - 1),
    size: z.number().int().min(2).max(MAX_SEGMENT_VMS),
    token: z.string().regex(/^[0-9a-f]{32,64}$/),
    link: z.string().regex(SEGMENT_FORWARD),
  }).refine((s) => s.index < s.size, 'index is not below size').optional(),
  /** Go on from this checkpoint, sent ahead with `remote receive-checkpoint` (a job moved off a drained host). */
  checkpoint: z.string().regex(CHECKPOINT_ID).optional(),
});
export type RemoteRunRequest = z.infer<typeof remoteRunSchema>;

/** The run.json a remote run leaves: a RunResult, checked before it is believed. */
export const remoteResultSchema = runResultSchema;
export type RemoteResult = CheckedRunResult;

/** Job ids name a directory on the host: keep them to a safe alphabet. */
export const JOB_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** `vmwu remote` ends a failure with this line on stderr, then the error as JSON, so the submitter can show the host's own words. */
export const ERROR_MARK = 'vmwu-remote-error ';

export interface RemoteErrorBody {
  code: string;
  message: string;
  hint?: string;
}

/** The error a failed `vmwu remote` command reported, from its stderr. */
export function parseRemoteError(stderr: string): RemoteErrorBody | undefined {
  const i = stderr.lastIndexOf(ERROR_MARK);
  if (i < 0) return undefined;
  try {
    const body = JSON.parse(stderr.slice(i + ERROR_MARK.length).split('\n')[0]!) as RemoteErrorBody;
    return typeof body.code === 'string' && typeof body.message === 'string' ? body : undefined;
  } catch {
    return undefined;
  }
}
