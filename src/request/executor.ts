import { checkNoControlChars } from '../control-chars.js';
import { VmwuError } from '../errors.js';
import { parseDuration } from '../quantities.js';

/**
 * Where a request's jobs run, as a user says it (`--executor` and its options, or
 * the dashboard's form) and as an experiment stores it: checked here once, for
 * every caller.
 */

/** Which executor an experiment runs on; no row means local. */
export interface ExecutorChoice {
  kind: 'local' | 'slurm' | 'ssh';
  options: Record<string, unknown>;
}

export interface SlurmOptions {
  partition?: string;
  account?: string;
  /** Extra sbatch options, passed through as `#SBATCH` lines (e.g. `--qos=x`). */
  extra?: string[];
  /** `%N` of `--array`: array tasks running at once. */
  maxParallel?: number;
  /**
   * The time limit of each allocation (`--slurm-time`), when a job may need more
   * than one: Slurm signals the task (USR1) before the limit, vmwu checkpoints and
   * stops the job, and its next attempt goes on from there in a new allocation.
   */
  allocationMs?: number;
}

export interface SshOptions {
  /** `--hosts`: label=value and/or host names. */
  hosts?: string;
  /** A host that does not answer for this long is lost (keepalives; also the connect timeout). */
  hostTimeoutMs?: number;
  /** `--spread`: each VM of a multi-VM job on a host of its own. */
  spread?: boolean;
}

/** The executor flags as given (strings from a command line or a form). */
export interface ExecutorFlags {
  executor?: 'local' | 'slurm' | 'ssh';
  partition?: string;
  account?: string;
  slurmOpt?: string[];
  slurmTime?: string;
  maxParallel?: string;
  hosts?: string;
  hostTimeout?: string;
  spread?: boolean;
}

/** A whole number option, or undefined when not given. */
export function wholeNumber(v: string | undefined, option: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min) throw new VmwuError('BAD_VALUE', `${option} ${v}: expected a whole number ≥ ${min}`);
  return Number(v);
}

/** What a request's other options say about its executor: a sweep's `--slots` is also Slurm's array tasks at once, without --max-parallel. */
export interface ExecutorContext {
  slots?: number;
}

function slurmOptions(o: ExecutorFlags, c: ExecutorContext): SlurmOptions {
  const so: SlurmOptions = {};
  for (const [flag, v] of [['--partition', o.partition], ['--account', o.account]] as const) if (v) checkNoControlChars(v, flag, 'BAD_VALUE', 'expected one sbatch value');
  if (o.partition) so.partition = o.partition;
  if (o.account) so.account = o.account;
  if (o.slurmOpt?.length) {
    for (const x of o.slurmOpt) {
      if (!x.startsWith('-') || /[\n\r]/.test(x)) throw new VmwuError('BAD_VALUE', `--slurm-opt ${x}: expected one sbatch option, e.g. --slurm-opt=--qos=normal`);
    }
    so.extra = o.slurmOpt;
  }
  if (o.slurmTime) so.allocationMs = parseDuration(o.slurmTime, '--slurm-time');
  const mp = wholeNumber(o.maxParallel, '--max-parallel', 1) ?? c.slots;
  if (mp !== undefined) so.maxParallel = mp;
  return so;
}

function sshOptions(o: ExecutorFlags): SshOptions {
  const so: SshOptions = {};
  if (o.hosts) so.hosts = o.hosts;
  if (o.hostTimeout) so.hostTimeoutMs = parseDuration(o.hostTimeout, '--host-timeout');
  if (o.spread) so.spread = true;
  return so;
}

/** The executor a request names, its options checked; options of another executor are refused. */
export function resolveExecutor(o: ExecutorFlags, c: ExecutorContext = {}): ExecutorChoice {
  const kind = o.executor ?? 'local';
  if (kind !== 'slurm' && (o.partition || o.account || o.slurmOpt?.length || o.maxParallel)) {
    throw new VmwuError('BAD_VALUE', '--partition, --account, --slurm-opt and --max-parallel go with --executor slurm');
  }
  if (kind !== 'ssh' && (o.hosts || o.hostTimeout || o.spread)) throw new VmwuError('BAD_VALUE', '--hosts, --host-timeout and --spread go with --executor ssh');
  if (kind === 'slurm') return { kind, options: { ...slurmOptions(o, c) } };
  if (kind === 'ssh') return { kind, options: { ...sshOptions(o) } };
  return { kind: 'local', options: {} };
}
