import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PortName } from '../../guest/protocol.js';
import { isVmwuError, VmwuError } from '../errors.js';
import { listBases, requireBase, type Base } from '../store/bases.js';
import type { Digest } from '../store/blobs.js';
import { getSetting, putSetting } from '../store/db.js';
import type { Store } from '../store/store.js';
import { decideAccel, type AccelVerdict, type ProbeKernel } from '../vm/accel.js';
import { hostTscKhz } from '../vm/host.js';
import { qemuDriver, type HypervisorDriver } from '../vm/driver.js';
import type { RunningVm } from '../vm/launch.js';
import { LineSplitter, parseCtlLine, PhaseClock, type CtlMessage, type Phases } from './ctl.js';
import { instancePaths, makeInstanceDirs, removeInstanceFiles, type InstancePaths } from './instance.js';
import { prepareInstance } from './prepare.js';
import type { InputEntry } from './input-disk.js';
import { sinkToFile } from './logsink.js';
import { selfIdentity } from './process-identity.js';
import { reapOrphans } from './reap.js';
import { finishRun, insertRun, markRunning, type RunStatus } from './records.js';

export interface RunRequest {
  /** Base name or digest. */
  base: string;
  argv: string[];
  params?: Record<string, string>;
  /** Host directory shown read-only at /app in the guest. */
  app?: string;
  /** Host files or directories placed in the guest's work dir. */
  inputs?: InputEntry[];
  /** A unit's layer chain, top first, ending just above the base root: boot the top layer instead of the root. */
  layers?: Digest[];
  /** Build mode: on success, move the root overlay here (it becomes a layer) instead of deleting it. */
  keepRoot?: string;
  /** Where outputs land; default `<store>/runs/<id>/out`. Must not exist or be empty. */
  outDir?: string;
  /** Globs (relative to the work dir) of the files to keep; default all. */
  keep?: string[];
  memoryMiB: number;
  cpus: number;
  timeoutMs: number;
  maxOutputBytes: number;
  network?: boolean;
}

export interface RunHooks {
  signal?: AbortSignal;
  /** The hypervisor to boot with; QEMU by default. */
  driver?: HypervisorDriver;
  onStart?(info: { id: string; runDir: string; outDir: string; accel: AccelVerdict }): void;
  onOutput?(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  onEvent?(msg: CtlMessage): void;
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
}

const LOG_CAP = 64 * 1024 * 1024;
const CONSOLE_CAP = 4 * 1024 * 1024;

export function newRunId(): string {
  return randomBytes(6).toString('hex');
}

/** Blobs are re-hashed once, on first use, then trusted (they are read-only and content-named). */
async function verifyOnce(store: Store, digests: (Digest | null)[]): Promise<void> {
  for (const d of digests) {
    if (!d || getSetting(store.db, `verified:${d}`)) continue;
    if (!store.blobs.has(d)) throw new VmwuError('BLOB_MISSING', `blob ${d} is missing from the store`, 'rebuild the base (vmwu base build …)');
    await store.blobs.verify(d);
    putSetting(store.db, `verified:${d}`, new Date().toISOString());
  }
}

/** The kernel the accelerator probe boots: the base's own, or any kernel base's for firmware-booted images. */
function probeKernel(store: Store, base: Base): ProbeKernel | undefined {
  const k = base.kernel && base.initrd ? base : listBases(store.db).find((b) => b.kernel && b.initrd);
  return k && { kernel: store.blobs.path(k.kernel!), initrd: store.blobs.path(k.initrd!), cmdline: k.cmdline, digest: k.kernel! };
}

function checkOutDir(outDir: string): void {
  if (existsSync(outDir)) {
    if (!statSync(outDir).isDirectory()) throw new VmwuError('BAD_OUT', `--out ${outDir} exists and is not a directory`);
    if (readdirSync(outDir).length) throw new VmwuError('BAD_OUT', `--out ${outDir} is not empty`, 'give a new or empty directory, so no earlier result is mixed in or overwritten');
  }
}

function parseExitCode(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (!/^\d{1,3}$/.test(t)) return undefined;
  const n = Number(t);
  return n <= 255 ? n : undefined;
}

/**
 * Runs one job in a fresh VM: prepare (O(1) overlay + input/output disks), boot,
 * watch (walltime, abort), collect (untrusted tar → outDir), clean up. Always
 * leaves a finished run record and no QEMU process or throw-away disk behind.
 */
export async function runJob(store: Store, req: RunRequest, hooks: RunHooks = {}): Promise<RunResult> {
  const clock = new PhaseClock();
  clock.mark('start');
  // Only needed once the VM has exited: load it while the guest boots.
  const collector = import('./collect.js');
  await reapOrphans(store);

  const base = requireBase(store.db, req.base);
  if (req.app && !(existsSync(req.app) && statSync(req.app).isDirectory())) throw new VmwuError('BAD_APP', `--app ${req.app}: not a directory`);
  const id = newRunId();
  const runDir = join(store.paths.runs, id);
  const outDir = resolve(req.outDir ?? join(runDir, 'out'));
  checkOutDir(outDir);
  await verifyOnce(store, [base.kernel, base.initrd, base.root, ...(req.layers ?? [])]);
  const accel = await decideAccel(store.db, probeKernel(store, base));

  const p = instancePaths(runDir, id);
  makeInstanceDirs(p);
  insertRun(store.db, {
    id, base: base.name, argv: req.argv, params: req.params ?? {}, owner: selfIdentity(),
    resources: { memoryMiB: req.memoryMiB, cpus: req.cpus, timeoutMs: req.timeoutMs }, outDir, runDir,
  });
  hooks.onStart?.({ id, runDir, outDir, accel });

  let status: RunResult['status'] = 'error';
  let exitCode: number | null = null;
  let error: RunResult['error'];
  let vm: RunningVm | undefined;
  const guestFailures: string[] = [];
  try {
    const disks = await prepareInstance(store, base, {
      ...req, id, root: req.layers?.length ? store.blobs.path(req.layers[0]!) : undefined, vmwuEnv: req.keepRoot ? { CLEAN_JOB: '1' } : undefined,
    }, p);
    clock.mark('prepared');
    if (hooks.signal?.aborted) throw new VmwuError('INTERRUPTED', 'interrupted before boot');

    vm = await (hooks.driver ?? qemuDriver).launch({
      name: id, accel: accel.accel, memoryMiB: req.memoryMiB, cpus: req.cpus,
      boot: base.boot === 'kernel' && base.kernel && base.initrd
        ? { kind: 'kernel', kernel: store.blobs.path(base.kernel), initrd: store.blobs.path(base.initrd), cmdline: base.cmdline }
        : { kind: 'bios' },
      disks, qmpSocket: p.sockets.qmp, consoleSocket: p.sockets.console,
      ports: [
        { name: PortName.ctl, socket: p.sockets.ctl },
        { name: PortName.stdout, socket: p.sockets.stdout },
        { name: PortName.stderr, socket: p.sockets.stderr },
      ],
      pidfile: p.pidfile, network: req.network ?? false, tscKhz: hostTscKhz(),
    });
    markRunning(store.db, id, accel.accel, vm.pid);

    const sinks = Promise.all([
      sinkToFile(vm.ports.get(PortName.stdout)!, p.logs.stdout, LOG_CAP, (c) => hooks.onOutput?.('stdout', c)),
      sinkToFile(vm.ports.get(PortName.stderr)!, p.logs.stderr, LOG_CAP, (c) => hooks.onOutput?.('stderr', c)),
      sinkToFile(vm.console, p.logs.console, CONSOLE_CAP),
    ]);
    const ctl = new LineSplitter((line) => {
      const msg = parseCtlLine(line);
      if (!msg) return;
      clock.mark(msg.event);
      if (msg.event === 'fail') guestFailures.push(msg.args.join(' '));
      hooks.onEvent?.(msg);
    });
    vm.ports.get(PortName.ctl)!.setEncoding('utf8').on('data', (d: string) => ctl.push(d));

    // Walltime and interruption both end the VM the same way: QMP quit, then SIGKILL.
    let ended = 'exit' as 'exit' | 'timeout' | 'abort';
    const running = vm;
    const stopFor = (why: 'timeout' | 'abort') => {
      if (ended !== 'exit') return;
      ended = why;
      void running.stop();
    };
    const timer = setTimeout(() => stopFor('timeout'), req.timeoutMs);
    const onAbort = () => stopFor('abort');
    hooks.signal?.addEventListener('abort', onAbort);
    await vm.exited;
    clearTimeout(timer);
    hooks.signal?.removeEventListener('abort', onAbort);
    clock.mark('exited');
    await sinks;

    if (ended === 'timeout') {
      status = 'timeout';
      error = { code: 'TIMEOUT', message: `walltime of ${req.timeoutMs} ms reached; the VM was stopped`, hint: 'raise --timeout' };
    } else if (ended === 'abort') {
      error = { code: 'INTERRUPTED', message: 'interrupted; the VM was stopped' };
    } else {
      // The archive is the guest's word on what happened; the control port is only a hint.
      const collected = await (await collector).collectOutputs({ source: p.output, outDir, maxBytes: req.maxOutputBytes, keep: req.keep });
      const code = parseExitCode(collected.meta.exit_code);
      if (code === undefined) {
        throw new VmwuError('BAD_OUTPUT', 'the guest reported no valid exit code', guestFailures[0] ?? 'see the console log');
      }
      exitCode = code;
      status = code === 0 ? 'succeeded' : 'failed';
      if (status === 'succeeded' && req.keepRoot) await rename(p.overlay, req.keepRoot);
      if (collected.meta.timings) writeFileSync(join(runDir, 'guest-timings'), collected.meta.timings);
      clock.mark('collected');
    }
  } catch (e) {
    status = 'error';
    const ve = isVmwuError(e) ? e : undefined;
    const guest = guestFailures.length ? ` (guest: ${guestFailures[0]})` : '';
    error = { code: ve?.code ?? 'INTERNAL', message: `${(e as Error).message}${guest}`, hint: ve?.hint };
    if (vm) await vm.stop(500);
  } finally {
    await removeInstanceFiles(p);
  }

  const phases = clock.phases();
  const totalMs = clock.total();
  const result: RunResult = { id, status, exitCode, accel: accel.accel, outDir, phases, totalMs, ...(error ? { error } : {}) };
  writeRunFiles(p, outDir, result);
  finishRun(store.db, id, { status, exitCode, phases, totalMs, error: error ? error.message : null });
  return result;
}

/** stdout, stderr, exit code and the result record beside the job's work files. */
function writeRunFiles(p: InstancePaths, outDir: string, result: RunResult): void {
  mkdirSync(outDir, { recursive: true });
  for (const [log, name] of [[p.logs.stdout, 'stdout'], [p.logs.stderr, 'stderr']] as const) {
    if (existsSync(log)) copyFileSync(log, join(outDir, name));
    else writeFileSync(join(outDir, name), '');
  }
  if (result.exitCode !== null) writeFileSync(join(outDir, 'exit_code'), `${result.exitCode}\n`);
  const json = JSON.stringify(result, null, 2) + '\n';
  writeFileSync(join(outDir, 'run.json'), json);
  writeFileSync(p.result, json);
}
