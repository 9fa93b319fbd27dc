import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadDefaults } from '../config.js';
import { resolveDatasetRefs } from '../data/records.js';
import { VmwuError } from '../errors.js';
import { parseDuration, parseSize } from '../quantities.js';
import { requireBase, type Base, type ImageProcess } from '../store/bases.js';
import type { Digest } from '../store/blobs.js';
import type { Store } from '../store/store.js';
import type { RunRequest } from '../run/job-request.js';
import type { GuestProcess } from '../run/command.js';
import { findUnit, listUnits, type UnitManifest } from '../unit/records.js';
import { MAX_SEGMENT_VMS } from '../vm/job-segment.js';
import { resolveExecutor, wholeNumber, type ExecutorChoice, type ExecutorContext, type ExecutorFlags } from './executor.js';

/**
 * One request resolved into what runs, for every caller (`vmwu run`, `vmwu shell`,
 * `vmwu sweep`, the dashboard): a unit or a bare base, its command and
 * parameters, and each resource by one rule: the flag, else the unit's value,
 * else the store's default (config.yaml).
 */

/** What every job boots: a unit's layer chain on its base, or a bare base. */
export interface Target {
  kind: 'unit' | 'base';
  /** `name:version` of the unit, or the base's name, for people. */
  label: string;
  /** Base digest, so a rebuilt base of the same name does not change a resumed experiment. */
  base: string;
  layers: Digest[];
  /** A unit's parameter defaults, exported to the guest unless the plan sets the same name. */
  paramDefaults: Record<string, string>;
  /** On a base pulled from a container image: the process its config describes (env, dir, user). */
  process?: GuestProcess;
}

/** What every job of a request gets. */
export interface JobResources {
  memoryMiB: number;
  cpus: number;
  timeoutMs: number;
  maxOutputBytes: number;
  /** Boot every job rather than restore it from a template (`--cold`). */
  cold?: boolean;
  /** Checkpoint each running job this often (`--checkpoint-every`): a lost attempt goes on from the latest. */
  checkpointEveryMs?: number;
  /** Jobs will be checkpointed: each one's RAM is a file of its own (JobRequest.checkpointable). */
  checkpointable?: boolean;
  /** CPU features the unit needs (its `cpu:`): hosts whose guests lack one do not take its jobs. */
  cpuNeeds?: string[];
  /** Datasets every job attaches (by digest, so a later `data add` of the same name changes nothing here). */
  datasets?: { name: string; digest: string }[];
  scratchBytes?: number;
  rootBytes?: number;
  /** Every job's standard input: a host file (absolute), or a file in its work dir. */
  stdin?: { host: string } | { work: string };
  /** VMs per job on a private network (`--nodes N`, `resources.nodes`); absent: one. With `nodesFrom`, the most any job has. */
  nodes?: number;
  /** A sweep's `--nodes VAR`: each job's VMs are its value of the plan parameter VAR (src/sweep/job-nodes.ts). */
  nodesFrom?: string;
  /** `--outputs all`: every VM's outputs are kept, each VM's but the first under node-K/. */
  outputsAll?: boolean;
}

/** A request as given: the words of a command line or the fields of a form, not yet checked. */
export interface RequestFlags extends ExecutorFlags {
  unit?: string;
  base?: string;
  /** Replaces the unit's `run` command; on an image base, the image's Cmd (`docker run IMAGE ARGS`). */
  command?: string[];
  /** On an image base: replaces the image's Entrypoint ('' clears it), and drops its Cmd, as `docker run --entrypoint` does. */
  entrypoint?: string;
  /** `--param`s given, checked against the unit's parameter types. */
  params?: Record<string, string>;
  keep?: string[];
  memory?: string;
  cpus?: string;
  timeout?: string;
  maxOutput?: string;
  scratch?: string;
  rootSize?: string;
  checkpointEvery?: string;
  /** `--checkpointable`: the job's RAM is a file of its own, so its checkpoints are copies of it. */
  checkpointable?: boolean;
  network?: boolean;
  cold?: boolean;
  data?: string[];
  /** A host file every job reads on its standard input. */
  stdin?: string;
  /** `--nodes N`, or on a sweep `--nodes VAR` (a plan parameter). */
  nodes?: string;
  /** `--outputs node0|all`: whose outputs a multi-VM job keeps. */
  outputs?: string;
}

/** What a request resolves to. */
export interface ResolvedRequest {
  target: Target;
  /** The command: the one given, else the unit's. */
  argv: string[];
  /** The unit's parameter defaults with the given ones over them. */
  params: Record<string, string>;
  keep?: string[];
  network: boolean;
  resources: JobResources;
  executor: ExecutorChoice;
}

/**
 * What the request is for: a sweep's jobs run on any executor, which boots only
 * kernel bases (firmware-booted images run with `vmwu run` alone); a shell is a
 * session, hours long unless told otherwise.
 */
export type RequestPurpose = 'run' | 'shell' | 'sweep';

/**
 * `--nodes` as given: a number of VMs, or on a sweep the name of the plan parameter
 * whose value each job takes (checked against the plan when the sweep is created),
 * else the unit's `resources.nodes`. Pure.
 */
export function nodesOf(flag: string | undefined, unitNodes: number | undefined, purpose: RequestPurpose): Pick<JobResources, 'nodes' | 'nodesFrom'> {
  // A shell is one VM, whatever the unit's jobs have.
  if (flag === undefined) return unitNodes && unitNodes > 1 && purpose !== 'shell' ? { nodes: unitNodes } : {};
  if (/^\d+$/.test(flag)) {
    const n = Number(flag);
    if (n < 1 || n > MAX_SEGMENT_VMS) throw new VmwuError('BAD_NODES', `--nodes ${flag}: a job has 1 to ${MAX_SEGMENT_VMS} VMs`, 'their addresses are one /24');
    if (n > 1 && purpose === 'shell') throw new VmwuError('BAD_NODES', '--nodes: a shell is one VM', 'run the multi-VM job with vmwu run --nodes');
    return n > 1 ? { nodes: n } : {};
  }
  if (purpose === 'sweep' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(flag)) return { nodesFrom: flag };
  throw new VmwuError('BAD_NODES', `--nodes ${flag}: expected a number of VMs${purpose === 'sweep' ? ' or the name of a plan parameter' : ''}`, 'e.g. --nodes 4');
}

/** `--outputs` as given: node0 (the default) or all. Pure. */
function outputsAllOf(flag: string | undefined, r: Pick<JobResources, 'nodes' | 'nodesFrom'>): boolean {
  if (flag === undefined || flag === 'node0') return false;
  if (flag !== 'all') throw new VmwuError('BAD_OPTION', `--outputs ${flag}: expected node0 or all`, 'all keeps every VM\'s outputs, each under node-K/');
  if (!r.nodes && !r.nodesFrom) throw new VmwuError('BAD_OPTION', '--outputs all is for a job of several VMs', 'give --nodes N too');
  return true;
}

/** A shell's walltime unless one is given: a session, not a job. */
export const SESSION_MS = 8 * 3600_000;

function requireUnit(store: Store, ref: string): UnitManifest {
  const u = findUnit(store.db, ref);
  if (u) return u;
  const names = listUnits(store.db).map((x) => `${x.name}:${x.version}`);
  throw new VmwuError('NO_UNIT', `no unit "${ref}"`, names.length ? `known units: ${names.join(', ')}; to boot a bare base use --base` : 'build one with `vmwu build DIR`, or boot a bare base with --base NAME');
}

/** A unit's params have types (from their defaults): a value that does not fit is refused. Pure. */
export function checkParamTypes(decl: UnitManifest['params'], given: Record<string, string>): void {
  for (const [k, v] of Object.entries(given)) {
    const t = decl[k]?.type;
    const ok = t === undefined || t === 'string'
      || (t === 'int' && /^[-+]?\d+$/.test(v))
      || (t === 'float' && v.trim() !== '' && Number.isFinite(Number(v)))
      || (t === 'bool' && /^(true|false)$/.test(v));
    if (!ok) throw new VmwuError('BAD_PARAM', `--param ${k}=${v}: ${k} is a ${t} parameter`, `the unit's default is ${decl[k]!.default}`);
  }
}

/**
 * The command `docker run [--entrypoint E] IMAGE ARGS` runs: the entrypoint (the
 * image's, or E, or none for '') followed by ARGS, or by the image's Cmd when there
 * are no ARGS and no --entrypoint. Pure.
 */
export function imageArgv(p: ImageProcess, args: string[], entrypoint?: string): string[] {
  if (entrypoint !== undefined) return [...(entrypoint === '' ? [] : [entrypoint]), ...args];
  return [...p.entrypoint, ...(args.length ? args : p.cmd)];
}

/**
 * The process a job runs in on an image base. A unit's jobs and a sweep's start in
 * the work dir, whatever the image's: that is where their inputs are and their
 * outputs are taken from.
 */
function processOf(b: Base, inWorkDir: boolean): GuestProcess | undefined {
  if (!b.image) return undefined;
  const p = b.image.process;
  return { env: p.env, workingDir: inWorkDir ? '' : p.workingDir, user: p.user };
}

/** The unit or base a request names, as a target; a firmware base is refused where it cannot run (sweeps). */
function resolveTargetOf(store: Store, r: RequestFlags, purpose: RequestPurpose): { target: Target; unit?: UnitManifest; base: Base } {
  if (r.unit && r.base) throw new VmwuError('BAD_OPTION', 'give --unit or --base, not both');
  if (r.unit) {
    const u = requireUnit(store, r.unit);
    const b = requireBase(store.db, u.baseDigest);
    const process = processOf(b, true);
    return {
      unit: u, base: b,
      target: {
        kind: 'unit', label: `${u.name}:${u.version}`, base: u.baseDigest, layers: u.chain,
        paramDefaults: Object.fromEntries(Object.entries(u.params).map(([k, v]) => [k, v.default])), ...(process ? { process } : {}),
      },
    };
  }
  if (r.base) {
    const b = requireBase(store.db, r.base);
    if (purpose === 'sweep' && b.boot !== 'kernel') {
      throw new VmwuError('UNSUPPORTED_BASE', `base ${b.name} boots with firmware, which sweeps do not support yet`, 'use a kernel base such as tiny, or run it with `vmwu run --base`');
    }
    if (purpose === 'shell' && b.image && !b.image.shell) {
      throw new VmwuError('NO_SHELL', `base ${b.name} (${b.image.ref}) has no shell: the image holds no /bin/sh`, 'run its programs with `vmwu run --base` instead, or pull an image with a shell');
    }
    const process = processOf(b, purpose === 'sweep');
    return { base: b, target: { kind: 'base', label: b.name, base: b.digest, layers: b.image?.layers ?? [], paramDefaults: {}, ...(process ? { process } : {}) } };
  }
  throw new VmwuError('NO_UNIT', purpose === 'sweep' ? 'nothing to run the jobs in' : 'nothing to run',
    purpose === 'sweep' ? 'give --unit UNIT (a built unit) or --base NAME (a bare base, e.g. tiny)' : 'give a unit (vmwu run mandelbrot) or a base and a command (vmwu run --base tiny -- true)');
}

/** Resolves a request for `purpose`: see the module comment for the rule. */
export async function resolveRequest(store: Store, r: RequestFlags, purpose: RequestPurpose, c: ExecutorContext = {}): Promise<ResolvedRequest> {
  const d = await loadDefaults(store.paths.root);
  const { target, unit, base } = resolveTargetOf(store, r, purpose);
  // The image's own command runs where nothing else says what to run: a bare image base, or a unit on one without `run:`.
  const imageCommand = base.image && !unit?.run?.length ? base.image.process : undefined;
  if (r.entrypoint !== undefined && !imageCommand) throw new VmwuError('BAD_OPTION', '--entrypoint is for a container image\'s own command (a base pulled with vmwu base pull, or a unit on one without run:)', 'give the command after -- instead');
  const given = r.params ?? {};
  if (unit) checkParamTypes(unit.params, given);
  const res = unit?.resources ?? {};
  const resources: JobResources = {
    memoryMiB: r.memory ? Math.round(parseSize(r.memory, '--memory') / 1024 ** 2) : res.memoryMiB ?? d.memoryMiB,
    cpus: wholeNumber(r.cpus, '--cpus', 1) ?? res.cpus ?? d.cpus,
    timeoutMs: r.timeout ? parseDuration(r.timeout, '--timeout') : purpose === 'shell' ? SESSION_MS : res.timeoutMs ?? d.timeoutMs,
    maxOutputBytes: r.maxOutput ? parseSize(r.maxOutput, '--max-output') : d.maxOutputBytes,
    ...(r.cold ? { cold: true } : {}),
    ...(r.checkpointEvery ? { checkpointEveryMs: parseDuration(r.checkpointEvery, '--checkpoint-every') } : {}),
    // Jobs that will be checkpointed: asked, every so often, or at the end of each Slurm allocation.
    ...(r.checkpointable || r.checkpointEvery || r.slurmTime ? { checkpointable: true } : {}),
    ...(unit?.cpu?.length ? { cpuNeeds: unit.cpu } : {}),
  };
  Object.assign(resources, nodesOf(r.nodes, res.nodes, purpose));
  if (r.checkpointable && resources.nodes) throw new VmwuError('BAD_NODES', '--checkpointable: a job of several VMs (--nodes) cannot be checkpointed', 'its VMs hold connections to each other; drop --checkpointable');
  if (outputsAllOf(r.outputs, resources)) resources.outputsAll = true;
  const datasets = resolveDatasetRefs(store.db, [...(unit?.data ?? []), ...(r.data ?? [])]);
  if (datasets.length) resources.datasets = datasets;
  const scratchBytes = r.scratch ? parseSize(r.scratch, '--scratch') : res.scratchBytes;
  if (scratchBytes) resources.scratchBytes = scratchBytes;
  const rootBytes = r.rootSize ? parseSize(r.rootSize, '--root-size') : res.rootBytes;
  if (rootBytes) resources.rootBytes = rootBytes;
  // A shell's standard input is the terminal, whatever the unit's jobs read.
  const stdin: JobResources['stdin'] = purpose === 'shell' ? undefined : r.stdin ? { host: resolve(r.stdin) } : unit?.stdin ? { work: unit.stdin } : undefined;
  if (stdin && 'host' in stdin && !existsSync(stdin.host)) throw new VmwuError('BAD_INPUT', `--stdin ${r.stdin}: no such file`, 'give the file the job reads on its standard input');
  if (stdin) resources.stdin = stdin;
  const keep = r.keep?.length ? r.keep : unit?.outputs.length ? unit.outputs : undefined;
  return {
    target, argv: imageCommand ? imageArgv(imageCommand, r.command ?? [], r.entrypoint) : r.command?.length ? r.command : unit?.run ?? [], params: { ...target.paramDefaults, ...given }, ...(keep ? { keep } : {}),
    network: Boolean(r.network) || Boolean(unit?.network), resources, executor: resolveExecutor(r, c),
  };
}

/** What a request's resources add to each job's request, whoever runs it (this host, an executor; the SSH pool sends them in its request). */
export function jobExtras(r: JobResources): Pick<RunRequest, 'cpuNeeds' | 'datasets' | 'scratchBytes' | 'rootBytes' | 'stdin' | 'checkpointable'> {
  return { cpuNeeds: r.cpuNeeds, datasets: r.datasets as RunRequest['datasets'], scratchBytes: r.scratchBytes, rootBytes: r.rootBytes, stdin: r.stdin, checkpointable: r.checkpointable };
}

/** The run a resolved request is on this host (`vmwu run`, `vmwu shell`): the caller adds its inputs, app and out dir. */
export function runRequestOf(r: ResolvedRequest): RunRequest {
  const x = r.resources;
  return {
    base: r.target.base, ...(r.target.layers.length ? { layers: r.target.layers } : {}), argv: r.argv, params: r.params, ...(r.keep ? { keep: r.keep } : {}),
    process: r.target.process,
    memoryMiB: x.memoryMiB, cpus: x.cpus, timeoutMs: x.timeoutMs, maxOutputBytes: x.maxOutputBytes, network: r.network, cold: Boolean(x.cold), ...jobExtras(x),
  };
}
