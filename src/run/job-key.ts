import { createHash } from 'node:crypto';

/**
 * A job's key for the result cache: the digest of everything that makes its result,
 * as Nextflow's `-resume` and Snakemake hash a task. Two jobs with the same key
 * would compute the same outputs, so the second takes the first's. Pure.
 */

export interface JobKeyParts {
  /** What boots: the base's digest, the unit's layers, an image's process. */
  target: { base: string; layers: string[]; process?: unknown; paramDefaults: Record<string, string> };
  /** What runs: a sweep job's commands (src/sweep/job-key.ts), or a `vmwu run`'s argv, kept globs and network (src/run/run-cache.ts). */
  commands: unknown;
  params: Record<string, string>;
  /** Each staged input (its plan path) and the digest of its content. */
  inputs: { path: string; digest: string }[];
  datasets: { name: string; digest: string }[];
  /** The digest of the standard input file, if any. */
  stdin: string | null;
  /** What the job can see of its machine. */
  machine: { cpus: number; memoryMiB: number; cpuModel: string; cpuNeeds: string[]; scratchBytes: number | null; rootBytes: number | null };
}

/** Changes whenever what goes into a key does: old keys then miss, never match wrongly. */
const KEY_FORMAT = 'vmwu-job-key/2';

export function jobKey(k: JobKeyParts): string {
  return `sha256:${createHash('sha256').update(canonical({ format: KEY_FORMAT, ...k })).digest('hex')}`;
}

/** JSON with object keys sorted at every depth, so equal parts give equal bytes. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).filter((k) => (v as Record<string, unknown>)[k] !== undefined).sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}
