import { mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where one instance keeps its throw-away disks, sockets and logs. */
export interface InstancePaths {
  runDir: string;
  overlay: string;
  input: string;
  output: string;
  app: string;
  pidfile: string;
  sockDir: string;
  sockets: { qmp: string; console: string; ctl: string; stdout: string; stderr: string };
  logs: { stdout: string; stderr: string; console: string };
  result: string;
}

// sun_path holds 108 bytes; a deep VMWU_HOME would overflow it.
const SUN_PATH_MAX = 100;

export function instancePaths(runDir: string, id: string): InstancePaths {
  const sockDir = join(runDir, 'qmp.sock').length > SUN_PATH_MAX ? join(tmpdir(), `vmwu-${id}`) : runDir;
  return {
    runDir,
    overlay: join(runDir, 'root.qcow2'),
    input: join(runDir, 'input.img'),
    output: join(runDir, 'output.img'),
    app: join(runDir, 'app.img'),
    pidfile: join(runDir, 'qemu.pid'),
    sockDir,
    sockets: {
      qmp: join(sockDir, 'qmp.sock'), console: join(sockDir, 'console.sock'), ctl: join(sockDir, 'ctl.sock'),
      stdout: join(sockDir, 'stdout.sock'), stderr: join(sockDir, 'stderr.sock'),
    },
    logs: { stdout: join(runDir, 'stdout.log'), stderr: join(runDir, 'stderr.log'), console: join(runDir, 'console.log') },
    result: join(runDir, 'result.json'),
  };
}

export function makeInstanceDirs(p: InstancePaths): void {
  mkdirSync(p.runDir, { recursive: true });
  mkdirSync(p.sockDir, { recursive: true, mode: 0o700 });
}

/** Removes everything an instance made except its logs and result. Safe to call twice. */
export async function removeInstanceFiles(p: InstancePaths): Promise<void> {
  await Promise.all([p.overlay, p.input, p.output, p.app, p.pidfile, ...Object.values(p.sockets)].map((f) => rm(f, { force: true })));
  if (p.sockDir !== p.runDir) await rm(p.sockDir, { recursive: true, force: true });
}
