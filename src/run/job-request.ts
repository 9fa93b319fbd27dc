import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { Digest } from '../store/blobs.js';
import { type AccelVerdict } from '../vm/accel.js';
import { type HypervisorDriver } from '../vm/driver.js';
import type { Usage } from '../vm/usage.js';
import { type CtlMessage } from './control-port.js';
import { type Phases } from './phase-clock.js';
import { type StartRecord } from './fast-start/clone.js';
import type { WarmPool } from './fast-start/warm-pool.js';
import type { InstanceControl } from './run-control.js';
import type { InputEntry } from './input-disk.js';
import type { GuestProcess } from './command.js';
import { type JobStdin } from './prepare.js';
import { type RunStatus } from './records.js';

/** What one job asks for and what it comes to: the request, the hooks its caller listens with, the result. */

/** What one job needs, whatever records it: the command, its files and its resources. */
export interface JobRequest {
  argv: string[];
  params?: Record<string, string>;
  /** Host directory shown read-only at /app in the guest. */
  app?: string;
  /** Host files or directories placed in the guest's work dir. */
  inputs?: InputEntry[];
  /** A shell script the guest finds beside its command (/job/in/script), outside the work dir: `argv` sources it (a sweep job's, src/sweep/job-launch.ts). */
  script?: string;
  /** Build mode: on success, move the root overlay here (it becomes a layer) instead of deleting it. */
  keepRoot?: string;
  /**
   * Build mode, two layers in one boot: once `argv` succeeded, the guest freezes
   * its root and the host cuts the overlay there (src/run/layer-cut.ts); what is
   * below the cut goes to `keepRoot`, also when the run fails after the cut.
   * Then `argv` here runs, and what it writes above the cut goes to `keep`.
   */
  cut?: { argv: string[]; keep: string };
  /** Globs (relative to the work dir) of the files to keep; default all. */
  keep?: string[];
  /** Leave out links out of the work dir instead of failing the run (src/run/collect.ts); `vmwu docker run` asks for it. */
  dropUnsafeLinks?: boolean;
  memoryMiB: number;
  cpus: number;
  timeoutMs: number;
  maxOutputBytes: number;
  network?: boolean;
  /** Boot, even where a template could start the job faster. */
  cold?: boolean;
  /**
   * The job will be checkpointed (`--checkpointable`, `--checkpoint-every`,
   * `--slurm-time`): its RAM is a file of its own (src/run/own-memory.ts), so a
   * checkpoint copies a file instead of streaming the RAM, and a restore maps
   * the copy back. It costs a copy of the template's RAM at start, and its RAM
   * is no longer shared with the template's other clones.
   */
  checkpointable?: boolean;
  /** CPU features the job needs (src/vm/cpu.ts): a host whose guests lack one refuses the job before it boots. */
  cpuNeeds?: string[];
  /** Datasets (src/data/), attached read-only at /data/NAME by digest: nothing is copied per job. */
  datasets?: { name: string; digest: Digest }[];
  /** `--scratch`: a sparse disk this big holds the work dir (and /scratch, $TMPDIR). */
  scratchBytes?: number;
  /** `--root-size`: the root disk's size, when larger than the image's. */
  rootBytes?: number;
  /** The job's standard input. */
  stdin?: JobStdin;
  /** A container image's process (its env, dir and user; src/run/command.ts) that the command runs in. */
  process?: GuestProcess;
  /** One VM of a multi-VM job (`--nodes`): its number, how many the job has, and its hub socket on the job's private segment (src/vm/job-segment.ts). */
  segment?: { index: number; size: number; socket: string; token: string };
  /** `vmwu shell`: the command runs on a terminal (the guest's /dev/hvc0) of this size, handed to RunHooks.onTty. */
  tty?: { rows: number; cols: number; term: string };
}

export interface RunRequest extends JobRequest {
  /** Base name or digest. */
  base: string;
  /** A unit's layer chain, top first, ending just above the base root: boot the top layer instead of the root. */
  layers?: Digest[];
  /** Where outputs land; default `<store>/runs/<id>/out`. Must not exist or be empty. */
  outDir?: string;
  /**
   * A checkpoint directory of this job from another store (a drained SSH host's):
   * go on from it as a new run. Where it cannot be restored here (another QEMU
   * build, its blobs missing), the job starts over and the start record says why.
   */
  resumeFrom?: string;
}

export interface RunHooks {
  signal?: AbortSignal;
  /** The hypervisor to boot with; QEMU by default. */
  driver?: HypervisorDriver;
  onStart?(info: { id: string; runDir: string; outDir: string; accel: AccelVerdict }): void;
  onOutput?(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  onEvent?(msg: CtlMessage): void;
  /** Called once the job runs, with what can be asked of it (a checkpoint). */
  onControl?(control: InstanceControl): void;
  /** With JobRequest.tty: the terminal's stream (raw bytes both ways) and how to tell the guest its new size. */
  onTty?(tty: { stream: Duplex; resize(rows: number, cols: number): void }): void;
  /** Clones kept warm for jobs like this one (src/run/fast-start/warm-pool.ts): the job takes one if one waits, and another is started for the next. */
  warm?: WarmPool;
  /** The sweep job this run is an attempt of: its checkpoints are recorded as the job's. */
  attemptOf?: { experiment: string; job: number; attempt: number };
}

export interface RunResult {
  id: string;
  status: Exclude<RunStatus, 'preparing' | 'running'>;
  exitCode: number | null;
  accel: 'kvm' | 'tcg';
  outDir: string;
  phases: Phases;
  totalMs: number;
  error?: { code: string; message: string; hint?: string };
  /** CPU time and peak memory of the run's QEMU. */
  usage?: Usage;
  /** Restored from a template or booted, and why a restore fell back to a boot. */
  start?: StartRecord;
  /** No VM ran: the result cache answered with this run's result (src/run/run-cache.ts). */
  cachedFrom?: string;
  /** The checkpoint a `stopped` job can go on from. */
  checkpoint?: string;
  /** A run that asked for a layer cut: whether its root was cut (a failure after the cut is the second command's). */
  cut?: boolean;
  /** Build mode: the parts of the root overlay kept (`keepRoot`, then the cut's `keep`), bottom first. */
  kept?: string[];
}

/** One VM of a multi-VM job (`--nodes`) and how it ended, as results and the dashboard show it. */
export interface VmOutcome {
  index: number;
  /** Its name on the job's network: node0 … */
  name: string;
  /** The machine it ran on. */
  machine: string;
  runId: string;
  /** `interrupted`: its host was lost (an SSH pool host). */
  status: RunResult['status'] | 'interrupted';
  error?: string;
  /** Restored from a template (fast start) or booted. */
  start?: StartRecord['mode'];
  phases?: Phases;
  totalMs?: number;
  usage?: Usage;
}

export function newRunId(): string {
  return randomBytes(6).toString('hex');
}
