import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chown, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { isVmwuError, VmwuError } from '../errors.js';
import { readProcUsage, type Usage } from './usage.js';
import { buildQemuArgv } from './argv.js';
import { startNetwork, type GuestLink } from './network.js';
import type { QemuUser } from './qemu-user.js';
import { supervisedCommand } from './supervise.js';
import { qemuBinary } from './host.js';
import { QmpClient } from './qmp.js';
import { INCOMING_FD } from './vm-state.js';
import type { VmSpec } from './spec.js';

/**
 * QEMU started for a VmSpec: vmwu listens on the instance's sockets, QEMU connects to each at
 * start-up, and the caller gets the running VM with its QMP, streams and exit.
 */

export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running QEMU: its QMP connection, its byte streams, and the promise of its exit. */
export interface RunningVm {
  pid: number;
  argv: string[];
  qmp: QmpClient;
  console: Socket;
  ports: Map<string, Socket>;
  exited: Promise<VmExit>;
  stderrTail(): string;
  /** CPU time and peak memory of QEMU so far (exact once the guest has powered off with `holdOnShutdown`). */
  usage(): Usage | undefined;
  /** Graceful stop: QMP `quit`, then SIGKILL after `graceMs`. Resolves once the process is gone; `usage()` is then what it used. */
  stop(graceMs?: number): Promise<VmExit>;
}

const STDERR_CAP = 64 * 1024;

/** Listens on a unix socket and resolves with the first (only) connection; `user` may connect to it. */
async function listenOnce(path: string, user: QemuUser | undefined): Promise<{ server: Server; conn: Promise<Socket> }> {
  await rm(path, { force: true });
  const server = createServer();
  const conn = new Promise<Socket>((resolve) => server.once('connection', (s: Socket) => {
    server.close();
    resolve(s);
  }));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  if (user) await chown(path, user.uid, user.gid);
  return { server, conn };
}

export async function launchQemu(spec: VmSpec, opts: { startTimeoutMs?: number } = {}): Promise<RunningVm> {
  const argv = [qemuBinary, ...buildQemuArgv(spec)];
  if (!spec.qmpSocket || !spec.consoleSocket) throw new Error('launchQemu needs the QMP and console sockets');
  const [cmd, args] = supervisedCommand(argv, spec.user);
  const listeners = await Promise.all([spec.qmpSocket, spec.consoleSocket, ...spec.ports.map((p) => p.socket)].map((p) => listenOnce(p, spec.user)));
  const closeAll = () => listeners.forEach((l) => l.server.close());
  let network: GuestLink | undefined;
  let child: ChildProcess;
  try {
    network = spec.network ? await startNetwork(spec) : undefined;
    // The saved state to load is QEMU's fd INCOMING_FD (opened here: QEMU's user need not be able to read it).
    const state = spec.incoming ? openSync(spec.incoming.state, 'r') : undefined;
    const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'ignore', 'pipe'];
    if (state !== undefined) stdio[INCOMING_FD] = state;
    try {
      child = spawn(cmd, args, { stdio });
    } finally {
      if (state !== undefined) closeSync(state);
    }
  } catch (e) {
    closeAll();
    await network?.stop();
    if (isVmwuError(e)) throw e;
    throw new VmwuError('QEMU_START', `cannot start ${qemuBinary}: ${(e as Error).message}`, 'install QEMU (Debian package qemu-system-x86)');
  }
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    if (stderr.length < STDERR_CAP) stderr += d.slice(0, STDERR_CAP - stderr.length);
  });
  const exited = new Promise<VmExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  }).then(async (x) => {
    await network?.stop();
    return x;
  });

  const timeout = opts.startTimeoutMs ?? 15_000;
  let timer: NodeJS.Timeout | undefined;
  const failed = Promise.race([
    exited.then((x) => new VmwuError('QEMU_START', `QEMU exited during start-up (${x.signal ?? `exit ${x.code}`}): ${stderr.trim() || 'no message'}`,
      'run `vmwu doctor`; check the base and the resources asked for')),
    ...(network ? [network.exited.then((why) => new VmwuError('NETWORK', `the guest network (passt) stopped during start-up: ${why}`, 'run `vmwu doctor`'))] : []),
    new Promise<VmwuError>((resolve) => {
      timer = setTimeout(() => resolve(new VmwuError('QEMU_START', `QEMU did not connect its sockets within ${timeout} ms`)), timeout);
    }),
  ]);
  try {
    const conns = await Promise.race([Promise.all(listeners.map((l) => l.conn)), failed.then((e) => { throw e; })]);
    const qmp = QmpClient.fromSocket(conns[0]!);
    await Promise.race([qmp.handshake(), failed.then((e) => { throw e; })]).catch(async (e: unknown) => {
      // QEMU closing QMP during start-up is QEMU exiting: its own words say why.
      const why = await Promise.race([failed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000))]);
      throw why ?? e;
    });
    const ports = new Map(spec.ports.map((p, i) => [p.name, conns[i + 2]!] as const));
    let usage: Usage | undefined;
    const sample = () => {
      usage = readProcUsage(child.pid!) ?? usage;
    };
    const sampler = setInterval(sample, 1000);
    sampler.unref();
    void exited.then(() => clearInterval(sampler));
    if (spec.holdOnShutdown) {
      // The guest is off and its vCPUs stopped: what /proc says now is the job's whole use.
      qmp.on('event', (ev: { event: string }) => {
        if (ev.event !== 'SHUTDOWN') return;
        sample();
        qmp.quit().catch(() => child.kill('SIGKILL'));
      });
    }
    const vm: RunningVm = {
      pid: child.pid!,
      argv,
      qmp,
      console: conns[1]!,
      ports,
      exited,
      stderrTail: () => stderr.trim().split('\n').slice(-10).join('\n'),
      usage: () => usage,
      stop: async (graceMs = 3000) => {
        sample();
        // A hung guest still answers QMP; a wedged QEMU does not, hence the SIGKILL fallback.
        qmp.quit().catch(() => undefined);
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        const x = await exited;
        clearTimeout(t);
        return x;
      },
    };
    return vm;
  } catch (e) {
    child.kill('SIGKILL');
    await exited;
    throw e;
  } finally {
    clearTimeout(timer);
    closeAll();
  }
}
