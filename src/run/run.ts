import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { chown, copyFile, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PortName } from '../../guest/protocol.js';
import type { Duplex } from 'node:stream';
import { loadConfig } from '../config.js';
import { formatBytes } from '../quantities.js';
import { isVmwuError, VmwuError } from '../errors.js';
import { listBases, requireBase, type Base } from '../store/bases.js';
import type { Digest } from '../store/blobs.js';
import { settingsCache } from '../store/db.js';
import { copyFileDurableSync, syncDirSync, syncFileSync, writeFileDurableSync } from '../store/durable.js';
import { noSpaceError } from '../store/no-space.js';
import type { Store } from '../store/store.js';
import { decideAccel, type AccelVerdict, type ProbeKernel, type VerdictCache } from '../vm/accel.js';
import { guestCpuModel, missingCpuFeatures, QEMU_DEFAULT_CPU } from '../vm/cpu.js';
import { offeredCpuFeatures } from '../vm/cpu-probe.js';
import { hostTscKhz } from '../vm/host.js';
import { qemuDriver, type HypervisorDriver } from '../vm/driver.js';
import type { RunningVm } from '../vm/launch.js';
import { guestNetworkEnv } from '../vm/network.js';
import { canReach, qemuUser } from '../vm/qemu-user.js';
import type { Accel, DiskSpec, VmSpec } from '../vm/spec.js';
import type { Usage } from '../vm/usage.js';
import { nodeBlobCache, storeBlobSource, type BlobSource } from './blob-source.js';
import { type CtlMessage } from './control-port.js';
import { PhaseClock, type Phases } from './phase-clock.js';
import { fastStartShape, removeInstanceDisks, restoreInstance, type StartRecord } from './fast-start/clone.js';
import { attachStreams, type Started } from './streams.js';
import { templateCache, templateKey, type TemplateCache } from './fast-start/template.js';
import { digestOfBlobPath, type CheckpointRecord } from './checkpoint/format.js';
import { checkpointControl } from './checkpoint/take.js';
import type { JobTerms, RestoringHost } from './checkpoint/trust.js';
import { LayerCutter } from './layer-cut.js';
import type { InstanceControl } from './run-control.js';
import { resumableHere, resumeInstance, type ResumeFrom } from './checkpoint/resume.js';
import { handInstanceTo, instancePaths, instanceWiring, makeInstanceDirs, removeInstanceFiles, runLogPaths, type InstancePaths } from './instance.js';
import type { InputEntry } from './input-disk.js';
import { instanceDir, openNodeDirs, type NodeDirs } from './node-dirs.js';
import { dataDiskBytes, prepareInstance, type DataDisk, type JobStdin } from './prepare.js';
import { selfIdentity } from '../store/process-identity.js';
import { reapOrphans } from './reap.js';
import { finishRun, insertRun, markRunning, type RunStatus } from './records.js';
import { checkpointBlobs, insertCheckpoint } from './checkpoint/records.js';
import { serveRunControl } from './run-control.js';

/**
 * The run path (docs/architecture.md, "One run"): one job prepared, booted or restored, watched,
 * collected and cleaned up, recorded in the store by runJob or, on a batch node, by nothing
 * (runInstance).
 */

/** What one job needs, whatever records it: the command, its files and its resources. */
export interface JobRequest {
  argv: string[];
  params?: Record<string, string>;
  /** Host directory shown read-only at /app in the guest. */
  app?: string;
  /** Host files or directories placed in the guest's work dir. */
  inputs?: InputEntry[];
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
  memoryMiB: number;
  cpus: number;
  timeoutMs: number;
  maxOutputBytes: number;
  network?: boolean;
  /** Boot, even where a template could start the job faster. */
  cold?: boolean;
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
  /** The checkpoint a `stopped` job can go on from. */
  checkpoint?: string;
  /** A run that asked for a layer cut: whether its root was cut (a failure after the cut is the second command's). */
  cut?: boolean;
  /** Build mode: the parts of the root overlay kept (`keepRoot`, then the cut's `keep`), bottom first. */
  kept?: string[];
}

export function newRunId(): string {
  return randomBytes(6).toString('hex');
}

/** The parts of a base an instance boots with. */
export type BootBase = Pick<Base, 'boot' | 'kernel' | 'initrd' | 'root' | 'cmdline' | 'virtualSize'>;

/** What an instance boots: verified files, all in one directory of their source. */
export interface BootImage {
  boot: VmSpec['boot'];
  /** The image the instance's overlay sits on: the base's root, or a unit's top layer. */
  root: string;
  virtualSize: number;
}

/** Resolves a base and a layer chain to verified files (the whole chain: each layer names its parent by file name). */
export async function resolveImage(source: BlobSource, base: BootBase, layers: Digest[] = []): Promise<BootImage> {
  const root = await source.path(base.root);
  const chain: string[] = [];
  for (const l of layers) chain.push(await source.path(l));
  const kernel = base.boot === 'kernel' && base.kernel && base.initrd ? { kernel: await source.path(base.kernel), initrd: await source.path(base.initrd) } : undefined;
  return {
    boot: kernel ? { kind: 'kernel', ...kernel, cmdline: base.cmdline } : { kind: 'bios' },
    root: chain[0] ?? root,
    virtualSize: base.virtualSize,
  };
}

/**
 * The job's own record of what it runs (src/run/checkpoint/trust.ts): what any
 * checkpoint of it must agree with to be restored as it. Undefined for
 * firmware-booted images, which cannot be checkpointed.
 */
export function jobTermsOf(image: BootImage, req: JobRequest, data: DataDisk[]): JobTerms | undefined {
  if (image.boot.kind !== 'kernel') return undefined;
  return {
    memoryMiB: req.memoryMiB, cpus: req.cpus, network: req.network ?? false, timeoutMs: req.timeoutMs, maxOutputBytes: req.maxOutputBytes,
    image: {
      kernel: digestOfBlobPath(image.boot.kernel), initrd: digestOfBlobPath(image.boot.initrd), root: digestOfBlobPath(image.root),
      virtualSize: image.virtualSize, cmdline: image.boot.cmdline,
    },
    ...(req.rootBytes ? { rootBytes: req.rootBytes } : {}),
    datasets: data.map((d) => ({ digest: digestOfBlobPath(d.path), diskBytes: d.virtualSize })),
    app: Boolean(req.app), ...(req.scratchBytes ? { scratchBytes: req.scratchBytes } : {}),
  };
}

/** What this host decides about a restore: its accelerator's CPU model. */
export function restoringHost(accel: Accel): RestoringHost {
  return { accel, cpuModel: guestCpuModel(accel) };
}

/**
 * Whether this host can go on from the checkpoint in `dir` as this job; else
 * why not (it then starts over, and its start record says why).
 */
export async function resumeHere(dir: string, terms: JobTerms | undefined, accel: Accel, source: BlobSource, logsFrom?: ResumeFrom['logsFrom']) {
  if (!terms) return { resumeRefused: 'a firmware-booted job cannot go on from a checkpoint; the job started over' };
  return resumableHere(dir, terms, restoringHost(accel), source, logsFrom);
}

/** A dataset's disk on this host: its blob, and the size the disk shows. */
export function dataDiskOf(name: string, path: string): DataDisk {
  return { name, path, virtualSize: dataDiskBytes(statSync(path).size) };
}

/** A job's datasets as this host's verified blobs. */
export async function resolveDatasets(source: BlobSource, datasets: JobRequest['datasets'] = []): Promise<DataDisk[]> {
  const out: DataDisk[] = [];
  for (const d of datasets) out.push(dataDiskOf(d.name, await source.path(d.digest)));
  return out;
}

/**
 * Where this host reads blobs from: the store itself when it is on a local disk;
 * a verified node-local copy when it is on a network filesystem, so that guests
 * do not read their disks over the network.
 */
export function blobSourceFor(store: Store, dirs: NodeDirs): BlobSource {
  const user = qemuUser();
  if (store.fs.network) return nodeBlobCache(store.blobs.dir, dirs.cache, { user });
  // A QEMU user that cannot get into the store (root's home) reads hard links in the node cache.
  if (user && !canReach(store.blobs.dir, user)) return nodeBlobCache(store.blobs.dir, dirs.cache, { user, verified: storeBlobSource(store) });
  return storeBlobSource(store);
}

/** The kernel the accelerator probe boots: the base's own, or any kernel base's for firmware-booted images. */
function probeKernel(store: Store, base: Base, image: BootImage): ProbeKernel | undefined {
  if (image.boot.kind === 'kernel') return { kernel: image.boot.kernel, initrd: image.boot.initrd, cmdline: base.cmdline, digest: base.kernel! };
  const k = listBases(store.db).find((b) => b.kernel && b.initrd);
  return k && { kernel: store.blobs.path(k.kernel!), initrd: store.blobs.path(k.initrd!), cmdline: k.cmdline, digest: k.kernel! };
}

export function checkOutDir(outDir: string): void {
  if (existsSync(outDir)) {
    if (!statSync(outDir).isDirectory()) throw new VmwuError('BAD_OUT', `--out ${outDir} exists and is not a directory`);
    if (readdirSync(outDir).length) throw new VmwuError('BAD_OUT', `--out ${outDir} is not empty`, 'give a new or empty directory, so no earlier result is mixed in or overwritten');
  }
}

/** The agent's `used avail` (KiB) of the scratch disk: full when under 1 MiB is left. */
export function scratchFull(text: string | undefined): boolean {
  const m = /^(\d+) (\d+)\s*$/.exec(text ?? '');
  return Boolean(m) && Number(m![2]) < 1024;
}

function parseExitCode(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (!/^\d{1,3}$/.test(t)) return undefined;
  const n = Number(t);
  return n <= 255 ? n : undefined;
}

/** A rename that also crosses filesystems (scratch → store). */
async function moveFile(src: string, dest: string): Promise<void> {
  try {
    await rename(src, dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
    await copyFile(src, dest);
    await rm(src, { force: true });
  }
}

/** Everything about one instance that its recorder decided: its id, files, accelerator and where its result goes. */
export interface InstanceContext {
  id: string;
  image: BootImage;
  accel: AccelVerdict;
  paths: InstancePaths;
  outDir: string;
  /** The run's directory in the store, if it has one: result.json and the guest's own timings go there too. */
  runDir?: string;
  /** The store the run is recorded in, if any: named in the hint of a full disk. */
  storeRoot?: string;
  clock: PhaseClock;
  /** This host's templates: without them every job boots. */
  templates?: TemplateCache;
  /** Where checkpoints of the job go, and who records them; without it the job cannot be checkpointed. */
  checkpoints?: { dir: string; onSaved?(rec: CheckpointRecord, dir: string): void };
  /** Go on from this checkpoint instead of starting the job. */
  resumeFrom?: ResumeFrom;
  /** Why a checkpoint the job was to go on from could not be used here: it started over. */
  resumeRefused?: string;
  /** Where the CPU features this host's guests get are remembered (src/vm/cpu-probe.ts). */
  cpuCache?: VerdictCache;
  /** The job's datasets, resolved to this host's verified blobs (resolveDatasets). */
  data?: DataDisk[];
  onRunning?(pid: number): void;
}

/**
 * Runs one job in a fresh VM, recording nothing: prepare (O(1) overlay + input and
 * output disks in node-local scratch), boot, watch (walltime, abort), collect
 * (untrusted tar → outDir), clean up. `runJob` records it in the store; a compute
 * node's task records it in files. Always leaves no QEMU process and no disk behind.
 */
export async function runInstance(ctx: InstanceContext, req: JobRequest, hooks: RunHooks = {}): Promise<RunResult> {
  const { id, paths: p, outDir, clock } = ctx;
  // Only needed once the VM has exited: load it while the guest boots.
  const collector = import('./collect.js');
  let status: RunResult['status'] = 'error';
  let exitCode: number | null = null;
  let error: RunResult['error'];
  let vm: RunningVm | undefined;
  let guestFailures: readonly string[] = [];
  let start: StartRecord | undefined;
  let stoppedAt: string | undefined;
  const user = qemuUser();
  const cutter = new LayerCutter(req.cut ? p.overlayAboveCut : undefined);
  const kept: string[] = [];
  const keep = async (from: string, to: string) => {
    await moveFile(from, to);
    // QEMU's user wrote it; it becomes a store file, which that user must not be able to change.
    if (user) await chown(to, process.getuid!(), process.getgid!());
    kept.push(to);
  };
  try {
    // CLEAN_JOB: an agent older than the job disk leaves no job files in a build's layer.
    const vmwuEnv = {
      ...(req.keepRoot ? { CLEAN_JOB: '1' } : {}), ...(req.network ? guestNetworkEnv() : {}),
      ...(req.tty ? { TTY: '1', TTY_ROWS: String(req.tty.rows), TTY_COLS: String(req.tty.cols), TTY_TERM: req.tty.term } : {}),
    };
    const job = { ...req, id, vmwuEnv, jobDisk: Boolean(req.keepRoot), argvAfterCut: req.cut?.argv, data: ctx.data ?? [] };
    const driver = hooks.driver ?? qemuDriver;
    const streamHooks = {
      ...hooks,
      onEvent: (msg: CtlMessage, v: RunningVm) => {
        cutter.onEvent(msg, v);
        hooks.onEvent?.(msg);
      },
    };
    const tscKhz = hostTscKhz();
    const cpuModel = guestCpuModel(ctx.accel.accel);
    if (req.cpuNeeds?.length) await requireCpu(req.cpuNeeds, ctx.accel.accel, ctx.cpuCache);
    const vmSpec = (disks: DiskSpec[]): VmSpec => ({
      name: id, accel: ctx.accel.accel, memoryMiB: req.memoryMiB, cpus: req.cpus, boot: ctx.image.boot,
      disks, ...instanceWiring(p, { tty: Boolean(req.tty) }), network: req.network ?? false, tscKhz, cpuModel, holdOnShutdown: true, user,
    });
    let started: Started | undefined;
    const shape = ctx.resumeFrom ? undefined : fastStartShape(ctx, req, tscKhz);
    if (ctx.resumeFrom) {
      // The job's own record decides the VM; the checkpoint was accepted only if it agrees (src/run/checkpoint/trust.ts).
      const vm = { accel: ctx.accel.accel, memoryMiB: req.memoryMiB, cpus: req.cpus, network: req.network ?? false, cpuModel: ctx.resumeFrom.rec.vm.cpuModel };
      started = await resumeInstance(ctx, ctx.resumeFrom, vm, { driver, user, hooks: streamHooks });
      start = { mode: 'restore', checkpoint: ctx.resumeFrom.rec.id };
    } else if (typeof shape === 'string' || !shape) {
      start = { mode: 'boot', ...(shape ? { fallback: shape } : {}) };
    } else {
      try {
        started = await restoreInstance(ctx, job, shape, { driver, user, hooks: streamHooks });
        start = { mode: 'restore', template: templateKey(shape) };
      } catch (e) {
        if (hooks.signal?.aborted) throw e;
        start = { mode: 'boot', fallback: (e as Error).message };
        await removeInstanceDisks(p, ctx.data?.length ?? 0);
      }
    }
    if (ctx.resumeRefused) start = { ...start, fallback: [ctx.resumeRefused, start.fallback].filter(Boolean).join('; ') };
    start = { ...start, cpu: ctx.resumeFrom ? (ctx.resumeFrom.rec.vm.cpuModel ?? QEMU_DEFAULT_CPU) : cpuModel };
    clock.startedBy = start.mode;
    if (!started) {
      const disks = await prepareInstance(ctx.image, job, p);
      if (user) await handInstanceTo(p, user);
      clock.mark('prepared');
      if (hooks.signal?.aborted) throw new VmwuError('INTERRUPTED', 'interrupted before boot');
      const spec = vmSpec(disks);
      started = attachStreams(await driver.launch(spec), spec, p, clock, streamHooks);
    }
    vm = started.vm;
    if (req.tty) {
      const ctlPort = vm.ports.get(PortName.ctl)!;
      hooks.onTty?.({ stream: vm.ports.get(PortName.tty)!, resize: (rows, cols) => ctlPort.write(`winsize ${rows} ${cols}\n`) });
    }
    ctx.onRunning?.(vm.pid);
    guestFailures = started.ctl.failures;

    // Walltime, interruption and a checkpoint with stop all end the VM the same way: QMP quit, then SIGKILL.
    let ended = 'exit' as 'exit' | 'timeout' | 'abort' | 'checkpoint';
    const running = vm;
    const stopFor = (why: 'timeout' | 'abort' | 'checkpoint') => {
      if (ended !== 'exit') return;
      ended = why;
      void running.stop();
    };
    // A job that goes on from a checkpoint has the walltime it had left.
    const elapsedBefore = ctx.resumeFrom?.rec.job.elapsedMs ?? 0;
    const runningSince = performance.now();
    const timer = setTimeout(() => stopFor('timeout'), Math.max(0, req.timeoutMs - elapsedBefore));
    const runningStarted = started;
    hooks.onControl?.(req.keepRoot ? buildControl : checkpointControl({
      checkpoints: ctx.checkpoints,
      subject: () => ({
        runId: id, started: runningStarted, paths: p, image: ctx.image, user, data: ctx.data,
        job: {
          argv: req.argv, params: req.params ?? {}, timeoutMs: req.timeoutMs, elapsedMs: Math.round(elapsedBefore + performance.now() - runningSince),
          maxOutputBytes: req.maxOutputBytes, ...(req.keep ? { keep: req.keep } : {}),
        },
      }),
      ending: () => ended !== 'exit',
      onStopped: (rec) => {
        stoppedAt = rec.id;
        stopFor('checkpoint');
      },
    }));
    const onAbort = () => stopFor('abort');
    hooks.signal?.addEventListener('abort', onAbort);
    // An interruption while the VM was starting or restoring came before anyone listened.
    if (hooks.signal?.aborted) onAbort();
    await vm.exited;
    clearTimeout(timer);
    hooks.signal?.removeEventListener('abort', onAbort);
    clock.mark('exited');
    await started.sinks;

    if (ended === 'timeout') {
      status = 'timeout';
      error = { code: 'TIMEOUT', message: `walltime of ${req.timeoutMs} ms reached; the VM was stopped`, hint: 'raise --timeout' };
    } else if (ended === 'abort') {
      error = { code: 'INTERRUPTED', message: 'interrupted; the VM was stopped' };
    } else if (ended === 'checkpoint') {
      status = 'stopped';
    } else if (cutter.failure) {
      throw cutter.failure;
    } else {
      // The archive is the guest's word on what happened; the control port is only a hint.
      const collected = await (await collector).collectOutputs({ source: p.output, outDir, maxBytes: req.maxOutputBytes, keep: req.keep });
      const code = parseExitCode(collected.meta.exit_code);
      if (code === undefined) {
        throw new VmwuError('BAD_OUTPUT', 'the guest reported no valid exit code', guestFailures[0] ?? 'see the console log');
      }
      exitCode = code;
      status = code === 0 ? 'succeeded' : 'failed';
      if (status === 'failed' && req.scratchBytes && scratchFull(collected.meta.scratch)) {
        error = { code: 'SCRATCH_FULL', message: `the job's scratch disk (${formatBytes(req.scratchBytes)}) was full when it ended`, hint: 'give it more: --scratch (resources.scratch in vmwu.yaml)' };
      }
      const missing = status === 'succeeded' ? cutter.missing() : undefined;
      if (missing) throw missing;
      if (status === 'succeeded' && req.keepRoot) {
        await keep(p.overlay, req.keepRoot);
        if (req.cut) await keep(p.overlayAboveCut, req.cut.keep);
      }
      if (collected.meta.timings && ctx.runDir) writeFileDurableSync(join(ctx.runDir, 'guest-timings'), collected.meta.timings, { dirSync: false });
      clock.mark('collected');
    }
  } catch (caught) {
    status = 'error';
    const e = noSpaceError(caught, { dir: outDir, store: ctx.storeRoot });
    const ve = isVmwuError(e) ? e : undefined;
    const guest = guestFailures.length ? ` (guest: ${guestFailures[0]})` : '';
    error = { code: ve?.code ?? 'INTERNAL', message: `${(e as Error).message}${guest}`, hint: ve?.hint };
    if (vm) await vm.stop(500);
  } finally {
    // The first step's part of a cut root is whole whatever became of the second
    // (its failure, the walltime, an interruption): kept, a rebuild starts from
    // it. Not after a refused cut: that guest is not to be believed.
    if (req.keepRoot && !kept.length && cutter.made && !cutter.failure) await keep(p.overlay, req.keepRoot).catch(() => undefined);
    await removeInstanceFiles(p);
  }

  const usage = vm?.usage();
  const result: RunResult = {
    id, status, exitCode, accel: ctx.accel.accel, outDir, phases: clock.phases(), totalMs: clock.total(),
    ...(start ? { start } : {}), ...(stoppedAt ? { checkpoint: stoppedAt } : {}), ...(error ? { error } : {}), ...(usage ? { usage } : {}),
    ...(req.cut ? { cut: cutter.made } : {}), ...(req.keepRoot ? { kept } : {}),
  };
  try {
    // A job stopped at a checkpoint is not done: its out dir stays unwritten until it is.
    if (status !== 'stopped') writeRunFiles(p, outDir, result, ctx.runDir);
  } catch (caught) {
    // No run.json means the out dir is not complete: the run is an error, whatever the guest said.
    const e = noSpaceError(caught, { dir: outDir, store: ctx.storeRoot });
    const ve = isVmwuError(e) ? e : undefined;
    return { ...result, status: 'error', error: { code: ve?.code ?? 'INTERNAL', message: `writing the result: ${(e as Error).message}`, hint: ve?.hint } };
  }
  return result;
}

/** Refuses, before anything boots, a job that needs CPU features this host's guests do not get. */
async function requireCpu(needs: string[], accel: 'kvm' | 'tcg', cache: VerdictCache | undefined): Promise<void> {
  const missing = missingCpuFeatures(needs, await offeredCpuFeatures(accel, cache));
  if (missing.length) {
    throw new VmwuError('CPU_UNSUPPORTED', `the job needs CPU features this host's guests (${accel}, -cpu ${guestCpuModel(accel)}) do not have: ${missing.join(', ')}`,
      accel === 'kvm' ? 'run it on a host whose CPU has them' : 'a newer QEMU emulates more; or run it on a KVM host whose CPU has them');
  }
}

/** A build's root disk becomes layers and its job disk is its own: there is nothing a checkpoint could go on from. */
const buildControl: InstanceControl = {
  checkpoint: () => Promise.reject(new VmwuError('CHECKPOINT', 'a build cannot be checkpointed', 'interrupt it (Ctrl-C) and build it again later')),
};

/** How this host runs a job of the store: its settings and node directories, the image's verified files, the accelerator. */
export async function hostSetup(store: Store, base: Base, layers?: Digest[]) {
  const config = await loadConfig(store.paths.root);
  const dirs = openNodeDirs(config.scratch, store.paths.root);
  const image = await resolveImage(blobSourceFor(store, dirs), base, layers);
  const accel = await decideAccel(settingsCache(store.db), probeKernel(store, base, image));
  return { config, dirs, image, accel };
}

/**
 * Runs one job in a fresh VM and records it in the store (the `runs` table and
 * `runs/<id>/`): what `vmwu run`, local sweeps, builds and SSH pool hosts do.
 * Always leaves a finished run record.
 */
export async function runJob(store: Store, req: RunRequest, hooks: RunHooks = {}): Promise<RunResult> {
  const clock = new PhaseClock();
  clock.mark('start');
  await reapOrphans(store);

  const base = requireBase(store.db, req.base);
  if (req.app && !(existsSync(req.app) && statSync(req.app).isDirectory())) throw new VmwuError('BAD_APP', `--app ${req.app}: not a directory`);
  const id = newRunId();
  const runDir = join(store.paths.runs, id);
  const outDir = resolve(req.outDir ?? join(runDir, 'out'));
  checkOutDir(outDir);
  const { config, dirs, image, accel } = await hostSetup(store, base, req.layers);
  const source = blobSourceFor(store, dirs);
  const data = await resolveDatasets(source, req.datasets);
  const terms = jobTermsOf(image, req, data);
  const resume = req.resumeFrom ? await resumeHere(req.resumeFrom, terms, accel.accel, source) : {};

  const p = instancePaths(instanceDir(dirs, id), runLogPaths(runDir), id);
  mkdirSync(runDir, { recursive: true });
  makeInstanceDirs(p);
  insertRun(store.db, {
    id, base: base.name, argv: req.argv, params: req.params ?? {}, owner: selfIdentity(),
    resources: { memoryMiB: req.memoryMiB, cpus: req.cpus, timeoutMs: req.timeoutMs, ...(terms ? { terms } : {}) }, outDir, runDir, scratchDir: p.scratch,
  });
  hooks.onStart?.({ id, runDir, outDir, accel });
  return runRecorded(store, {
    id, image, accel, paths: p, outDir, runDir, clock,
    ...(config.fastStart ? { templates: templateCache(dirs, qemuUser(), hooks.driver) } : {}),
    ...resume, cpuCache: settingsCache(store.db), data,
  }, req, hooks);
}

/**
 * An instance recorded in the store's `runs`: running (with its QEMU's pid), its
 * control socket (`vmwu checkpoint`), its checkpoints, and how it finished.
 */
export async function runRecorded(store: Store, ctx: Omit<InstanceContext, 'storeRoot' | 'checkpoints' | 'onRunning' | 'runDir'> & { runDir: string },
  req: JobRequest, hooks: RunHooks): Promise<RunResult> {
  let control: InstanceControl | undefined;
  const server = await serveRunControl(ctx.paths.sockets.control, () => control);
  try {
    const result = await runInstance({
      ...ctx, storeRoot: store.paths.root,
      checkpoints: { dir: store.paths.checkpoints, onSaved: (rec, dir) => insertCheckpoint(store.db, { ...rec, blobs: checkpointBlobs(rec) }, dir, hooks.attemptOf ?? null) },
      onRunning: (pid) => markRunning(store.db, ctx.id, ctx.accel.accel, pid, ctx.paths.sockets.control),
    }, req, {
      ...hooks,
      onControl: (c) => {
        control = c;
        hooks.onControl?.(c);
      },
    });
    finishRun(store.db, ctx.id, {
      status: result.status, exitCode: result.exitCode, phases: result.phases, totalMs: result.totalMs, error: result.error?.message ?? null,
      usage: result.usage ?? null, start: result.start,
    });
    return result;
  } finally {
    control = undefined;
    server.close();
  }
}

/**
 * stdout, stderr, exit code and the result record beside the job's work files,
 * each written whole and fsynced (src/store/durable.ts). run.json comes last,
 * after the directory holding the others is synced: a run.json on the disk means
 * the out dir is complete. Only then does the caller record the run as finished.
 */
function writeRunFiles(p: InstancePaths, outDir: string, result: RunResult, runDir: string | undefined): void {
  mkdirSync(outDir, { recursive: true });
  for (const [log, name] of [[p.logs.stdout, 'stdout'], [p.logs.stderr, 'stderr']] as const) {
    const dest = join(outDir, name);
    if (log === dest) {
      if (existsSync(dest)) syncFileSync(dest);
      else writeFileDurableSync(dest, '', { dirSync: false });
    } else if (existsSync(log)) {
      copyFileDurableSync(log, dest, { dirSync: false });
    } else {
      writeFileDurableSync(dest, '', { dirSync: false });
    }
  }
  if (result.exitCode !== null) writeFileDurableSync(join(outDir, 'exit_code'), `${result.exitCode}\n`, { dirSync: false });
  syncDirSync(outDir);
  const json = JSON.stringify(result, null, 2) + '\n';
  writeFileDurableSync(join(outDir, 'run.json'), json);
  if (runDir) writeFileDurableSync(join(runDir, 'result.json'), json);
}
