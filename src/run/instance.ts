import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
  input: string;
  output: string;
  app: string;
  pidfile: string;
  sockDir: string;
  sockets: { qmp: string; console: string; ctl: string; stdout: string; stderr: string };
  logs: LogPaths;
}

// sun_path holds 108 bytes; a deep scratch directory would overflow it.
const SUN_PATH_MAX = 100;

export function instancePaths(scratch: string, logs: LogPaths, id: string): InstancePaths {
  const sockDir = join(scratch, 'qmp.sock').length > SUN_PATH_MAX ? join(tmpdir(), `vmwu-${id}`) : scratch;
  return {
    scratch,
    overlay: join(scratch, 'root.qcow2'),
    input: join(scratch, 'input.img'),
    output: join(scratch, 'output.img'),
    app: join(scratch, 'app.img'),
    pidfile: join(scratch, 'qemu.pid'),
    sockDir,
    sockets: {
      qmp: join(sockDir, 'qmp.sock'), console: join(sockDir, 'console.sock'), ctl: join(sockDir, 'ctl.sock'),
      stdout: join(sockDir, 'stdout.sock'), stderr: join(sockDir, 'stderr.sock'),
    },
    logs,
  };
}

export function makeInstanceDirs(p: InstancePaths): void {
  mkdirSync(p.scratch, { recursive: true, mode: 0o700 });
  mkdirSync(p.sockDir, { recursive: true, mode: 0o700 });
}

/** Removes the instance's scratch directory (disks, sockets); its logs stay. Safe to call twice. */
export async function removeInstanceFiles(p: Pick<InstancePaths, 'scratch' | 'sockDir'>): Promise<void> {
  await rm(p.scratch, { recursive: true, force: true, maxRetries: 3 });
  if (p.sockDir !== p.scratch) await rm(p.sockDir, { recursive: true, force: true, maxRetries: 3 });
}
