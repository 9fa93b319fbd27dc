import { existsSync, readdirSync, statSync } from 'node:fs';
import { chown, copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { PortName } from '../../guest/protocol.js';
import { formatBytes } from '../quantities.js';
import { isVmwuError, VmwuError } from '../errors.js';
import { copyFileDurable, syncDir, syncFile, writeFileDurable } from '../store/durable.js';
import { noSpaceError } from '../store/no-space.js';
import { type AccelVerdict, type VerdictCache } from '../vm/accel.js';
import { guestCpuModel, missingCpuFeatures, QEMU_DEFAULT_CPU } from '../vm/cpu.js';
import { offeredCpuFeatures } from '../vm/cpu-probe.js';
import { hostTscKhz } from '../vm/host.js';
import { qemuDriver } from '../vm/driver.js';
import type { RunningVm } from '../vm/launch.js';
import { guestNetworkEnv } from '../vm/network.js';
import { segmentEnv, segmentMac } from '../vm/job-segment.js';
import { qemuUser } from '../vm/qemu-user.js';
import type { DiskSpec, VmSpec } from '../vm/spec.js';
import { type CtlMessage } from './control-port.js';
import { PhaseClock } from './phase-clock.js';
import { fastStartShape, restoreInstance, type StartRecord } from './fast-start/clone.js';
import { attachStreams, type Started } from './streams.js';
import { templateKey, type TemplateCache } from './fast-start/template.js';
import { adoptWarmClone, discardWarmClone, type WarmClone } from './fast-start/warm-pool.js';
import type { CacheUse } from './node-cache.js';
import { type CheckpointRecord } from './checkpoint/format.js';
import { checkpointControl } from './checkpoint/take.js';
import { LayerCutter } from './layer-cut.js';
import type { InstanceControl } from './run-control.js';
import { resumeInstance, type ResumeFrom } from './checkpoint/resume.js';
import { handInstanceTo, instanceWiring, remakeInstanceDirs, removeInstanceFiles, type InstancePaths } from './instance.js';
import { prepareInstance, type DataDisk } from './prepare.js';
import { makeOwnMemory } from './own-memory.js';
import { JobRequest, RunHooks, RunResult } from './job-request.js';
import { BootImage } from './host-setup.js';

/** One job in a fresh VM, recording nothing: prepare or restore, boot, watch, collect, clean up; its files written whole. */

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
  /** A clone kept warm for the job (src/run/fast-start/warm-pool.ts): `paths` are its, with the job's logs. */
  warm?: WarmClone;
  /** The job's use of the node cache (src/run/node-cache.ts): what it could not do for the job goes into the start record. Else the templates'. */
  cache?: CacheUse;
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
      ...(req.segment ? segmentEnv(req.segment.index, req.segment.size, req.cpus, req.segment.token) : {}),
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
      ...(req.segment ? { segment: { socket: req.segment.socket, mac: segmentMac(req.segment.index) } } : {}),
    });
    let started: Started | undefined;
    const shape = ctx.resumeFrom ? undefined : fastStartShape(ctx, req, tscKhz);
    if (ctx.resumeFrom) {
      // The job's own record decides the VM; the checkpoint was accepted only if it agrees (src/run/checkpoint/trust.ts).
      const vm = { accel: ctx.accel.accel, memoryMiB: req.memoryMiB, cpus: req.cpus, network: req.network ?? false, cpuModel: ctx.resumeFrom.rec.vm.cpuModel };
      started = await resumeInstance(ctx, ctx.resumeFrom, vm, { driver, user, hooks: streamHooks });
      start = { mode: 'restore', checkpoint: ctx.resumeFrom.rec.id };
    } else if (ctx.warm) {
      const w = ctx.warm;
      try {
        started = await adoptWarmClone({ paths: p, clock, use: ctx.cache ?? ctx.templates?.use }, job, w, streamHooks);
        start = { mode: 'restore', template: w.key, warm: true };
      } catch (e) {
        if (hooks.signal?.aborted) throw e;
        start = { mode: 'boot', fallback: `the warm clone could not take the job: ${(e as Error).message}` };
        await remakeInstanceDirs(p);
      }
    } else if (typeof shape === 'string' || !shape) {
      start = { mode: 'boot', ...(shape ? { fallback: shape } : {}) };
    } else {
      try {
        started = await restoreInstance(ctx, job, shape, { driver, user, hooks: streamHooks, segmentSocket: req.segment?.socket });
        start = { mode: 'restore', template: templateKey(shape) };
      } catch (e) {
        if (hooks.signal?.aborted) throw e;
        start = { mode: 'boot', fallback: (e as Error).message };
        await remakeInstanceDirs(p);
      }
    }
    if (ctx.resumeRefused) start = { ...start, fallback: [ctx.resumeRefused, start.fallback].filter(Boolean).join('; ') };
    // Read after the restore: making a template adds to them.
    const cacheNotes = (ctx.cache ?? ctx.templates?.use)?.notes ?? [];
    if (cacheNotes.length) start = { ...start, cache: cacheNotes.join('; ').slice(0, 2000) };
    start = { ...start, cpu: ctx.resumeFrom ? (ctx.resumeFrom.rec.vm.cpuModel ?? QEMU_DEFAULT_CPU) : cpuModel };
    clock.startedBy = start.mode;
    if (!started) {
      const disks = await prepareInstance(ctx.image, job, p);
      const memory = req.checkpointable ? await makeOwnMemory(p, req.memoryMiB) : undefined;
      if (user) await handInstanceTo(p, user);
      clock.mark('prepared');
      if (hooks.signal?.aborted) throw new VmwuError('INTERRUPTED', 'interrupted before boot');
      const spec: VmSpec = { ...vmSpec(disks), ...(memory ? { memoryFile: { path: memory, shared: true } } : {}) };
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
    hooks.onControl?.(req.keepRoot ? buildControl : req.segment ? segmentControl : checkpointControl({
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
      const collected = await (await collector).collectOutputs({ source: p.output, outDir, maxBytes: req.maxOutputBytes, keep: req.keep, dropUnsafeLinks: req.dropUnsafeLinks });
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
      if (collected.meta.timings && ctx.runDir) await writeFileDurable(join(ctx.runDir, 'guest-timings'), collected.meta.timings, { dirSync: false });
      clock.mark('collected');
    }
  } catch (caught) {
    status = 'error';
    const e = noSpaceError(caught, { dir: outDir, store: ctx.storeRoot });
    const ve = isVmwuError(e) ? e : undefined;
    const guest = guestFailures.length ? ` (guest: ${guestFailures[0]})` : '';
    error = { code: ve?.code ?? 'INTERNAL', message: `${(e as Error).message}${guest}`, hint: ve?.hint };
    if (vm) await vm.stop(500);
    // Failed before the job took it: the clone is no one's.
    else if (ctx.warm && !start) await discardWarmClone(ctx.warm);
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
    if (status !== 'stopped') await writeRunFiles(p, outDir, result, ctx.runDir);
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

/** One VM of a multi-VM job alone would go on without its peers, whose network state it holds: refused until checkpoints are coordinated. */
const segmentControl: InstanceControl = {
  checkpoint: () => Promise.reject(new VmwuError('CHECKPOINT', 'a VM of a multi-VM job (--nodes) cannot be checkpointed alone: its peers hold connections to it',
    'let the job run to its end, or stop it and run it again')),
};

/**
 * stdout, stderr, exit code and the result record beside the job's work files,
 * each written whole and fsynced (src/store/durable.ts). run.json comes last,
 * after the directory holding the others is synced: a run.json on the disk means
 * the out dir is complete. Only then does the caller record the run as finished.
 */
async function writeRunFiles(p: InstancePaths, outDir: string, result: RunResult, runDir: string | undefined): Promise<void> {
  await mkdir(outDir, { recursive: true });
  // Each file's fsync in a thread of its own: the filesystem commits them together.
  const streams = ([[p.logs.stdout, 'stdout'], [p.logs.stderr, 'stderr']] as const).map(([log, name]) => {
    const dest = join(outDir, name);
    if (log === dest) return existsSync(dest) ? syncFile(dest) : writeFileDurable(dest, '', { dirSync: false });
    return existsSync(log) ? copyFileDurable(log, dest, { dirSync: false }) : writeFileDurable(dest, '', { dirSync: false });
  });
  await Promise.all([...streams, ...(result.exitCode !== null ? [writeFileDurable(join(outDir, 'exit_code'), `${result.exitCode}\n`, { dirSync: false })] : [])]);
  await syncDir(outDir);
  const json = JSON.stringify(result, null, 2) + '\n';
  await Promise.all([writeFileDurable(join(outDir, 'run.json'), json), ...(runDir ? [writeFileDurable(join(runDir, 'result.json'), json)] : [])]);
}
