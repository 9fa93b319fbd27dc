import { existsSync, mkdirSync } from 'node:fs';
import { lchown, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VmwuError } from '../errors.js';
import { PortName } from '../../guest/protocol.js';
import { chownDirNoFollow, ensurePrivateDir } from '../store/private-dir.js';
import { canReach, openWayTo, type QemuUser } from '../vm/qemu-user.js';
import { shortSocketRoot } from './node-dirs.js';
import { ownMemoryDir, removeOwnMemory } from './own-memory.js';
import type { VmSpec } from '../vm/spec.js';

/** Where one instance's files go: its disks, pidfile and sockets in node-local scratch, its logs where they are read, and their hand-over to QEMU's user. */

/** Where a run's guest streams land: live, so `vmwu logs -f` and the dashboard follow them. */
export interface LogPaths {
  stdout: string;
  stderr: string;
  console: string;
}

/** A run's logs in its run directory of the store. */
export function runLogPaths(runDir: string): LogPaths {
  return { stdout: join(runDir, 'stdout.log'), stderr: join(runDir, 'stderr.log'), console: join(runDir, 'console.log') };
}

/** A batch task's logs: straight into the attempt's out dir on the shared filesystem, under their final names. */
export function attemptLogPaths(outDir: string): LogPaths {
  return { stdout: join(outDir, 'stdout'), stderr: join(outDir, 'stderr'), console: join(outDir, 'console.log') };
}

/**
 * One instance's files. Its disks, pidfile and sockets are in `scratch`, a
 * node-local directory of its own (src/run/node-dirs.ts): every guest write goes
 * there, never to a shared store. Its logs go where they are read.
 */
export interface InstancePaths {
  scratch: string;
  overlay: string;
  /** A build's root overlay above its layer cut: QEMU makes it at the cut (src/run/layer-cut.ts). */
  overlayAboveCut: string;
  input: string;
  output: string;
  app: string;
  /** A build's job disk (guest/agent: /job on a disk of its own). */
  job: string;
  pidfile: string;
  sockDir: string;
  /** Where a checkpointable job's own RAM file goes on tmpfs, named for this process (src/run/own-memory.ts); made only for such jobs. */
  memoryDir: string;
  sockets: { qmp: string; console: string; ctl: string; stdout: string; stderr: string; tty: string; control: string };
  logs: LogPaths;
}

/** vmwu's own socket for requests about the run (src/run/run-control.ts): beside the directory QEMU's user is given, not in it. */
function controlSocket(sockDir: string): string {
  return `${sockDir}.sock`;
}

// sun_path holds 108 bytes; a deep scratch directory would overflow it.
const SUN_PATH_MAX = 100;

/** The overlay of a job's n-th dataset disk (a qcow2 over the dataset's blob: nothing copied). */
export function dataDiskPath(p: Pick<InstancePaths, 'scratch'>, n: number): string {
  return join(p.scratch, `data${n}.qcow2`);
}

export function instancePaths(scratch: string, logs: LogPaths, id: string): InstancePaths {
  const sockDir = join(scratch, 'qmp.sock').length > SUN_PATH_MAX ? join(shortSocketRoot(), id) : scratch;
  return {
    scratch,
    overlay: join(scratch, 'root.qcow2'),
    overlayAboveCut: join(scratch, 'root-above-cut.qcow2'),
    input: join(scratch, 'input.img'),
    output: join(scratch, 'output.img'),
    app: join(scratch, 'app.img'),
    job: join(scratch, 'job.img'),
    pidfile: join(scratch, 'qemu.pid'),
    sockDir,
    memoryDir: ownMemoryDir(),
    sockets: {
      qmp: join(sockDir, 'qmp.sock'), console: join(sockDir, 'console.sock'), ctl: join(sockDir, 'ctl.sock'),
      stdout: join(sockDir, 'stdout.sock'), stderr: join(sockDir, 'stderr.sock'), tty: join(sockDir, 'tty.sock'),
      control: controlSocket(sockDir),
    },
    logs,
  };
}

/** How an instance's VM is wired to vmwu: QMP, console and the agent's ports, all in its socket directory, and its pidfile. */
export function instanceWiring(p: InstancePaths, o: { tty?: boolean } = {}): Pick<VmSpec, 'qmpSocket' | 'consoleSocket' | 'ports' | 'pidfile'> {
  return {
    qmpSocket: p.sockets.qmp, consoleSocket: p.sockets.console, pidfile: p.pidfile,
    ports: [
      { name: PortName.ctl, socket: p.sockets.ctl },
      { name: PortName.stdout, socket: p.sockets.stdout },
      { name: PortName.stderr, socket: p.sockets.stderr },
      ...(o.tty ? [{ name: PortName.tty, socket: p.sockets.tty, console: true }] : []),
    ],
  };
}

/** The instance's directories, inside the private ones openNodeDirs made (and shortSocketRoot's, made private here). */
export function makeInstanceDirs(p: InstancePaths): void {
  mkdirSync(p.scratch, { recursive: true, mode: 0o700 });
  if (p.sockDir !== p.scratch) {
    ensurePrivateDir(dirname(dirname(p.sockDir)));
    ensurePrivateDir(dirname(p.sockDir));
    mkdirSync(p.sockDir, { mode: 0o700 });
  }
}

async function removeInstanceDirs(p: Pick<InstancePaths, 'scratch' | 'sockDir' | 'memoryDir'>): Promise<void> {
  await rm(p.scratch, { recursive: true, force: true, maxRetries: 3 });
  await removeOwnMemory(p);
  if (p.sockDir !== p.scratch) await rm(p.sockDir, { recursive: true, force: true, maxRetries: 3 });
}

/** Removes the instance's scratch directory (disks, sockets) and its own RAM; its logs stay. Safe to call twice. */
export async function removeInstanceFiles(p: Pick<InstancePaths, 'scratch' | 'sockDir' | 'memoryDir'>): Promise<void> {
  await removeInstanceDirs(p);
  await rm(controlSocket(p.sockDir), { force: true });
}

/**
 * The instance's directories made anew, empty and vmwu's, before a cold boot
 * starts over where a restore failed: they were QEMU's user's (handInstanceTo),
 * who may have left links there for vmwu to write through as it prepares.
 */
export async function remakeInstanceDirs(p: InstancePaths): Promise<void> {
  await removeInstanceDirs(p);
  makeInstanceDirs(p);
}

/**
 * Gives an instance's directories and files to the user QEMU runs as (vmwu is
 * root) and opens the way to them; refuses a scratch directory that user cannot
 * reach, rather than letting QEMU fail on it. Only inside the directories vmwu
 * made private (openNodeDirs), and never through a link.
 */
export async function handInstanceTo(p: InstancePaths, user: QemuUser): Promise<void> {
  // scratch is <node dir>/vmwu-<uid>/instances/<id>: vmwu made the two above it.
  const nodeDir = dirname(dirname(dirname(p.scratch)));
  if (!canReach(nodeDir, user)) {
    throw new VmwuError('BAD_SCRATCH', `QEMU runs as ${user.name}, which cannot reach the scratch directory ${nodeDir}`,
      'set `scratch:` in config.yaml or $VMWU_SCRATCH to a directory every user can pass through (e.g. /var/tmp)');
  }
  for (const dir of new Set([p.scratch, p.sockDir, ...(existsSync(p.memoryDir) ? [p.memoryDir] : [])])) {
    openWayTo(dirname(dirname(dir)), dirname(dir));
    chownDirNoFollow(dir, user.uid, user.gid);
    // lchown: an entry that is a link is given away itself, never what it points at.
    for (const name of await readdir(dir)) await lchown(join(dir, name), user.uid, user.gid);
  }
}
