import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';

/**
 * Small helpers for the throw-away hosts and cluster nodes the tests and
 * benchmarks make of network namespaces on this machine (needs root).
 */
export const SBIN_PATH = `${process.env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin`;

/** Runs a command, throwing with its stderr when it fails. */
export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, PATH: SBIN_PATH } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/** Whether something accepts TCP connections there yet. */
export function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Which of these commands are missing. */
export function missingCommands(cmds: string[]): string[] {
  return cmds.filter((c) => spawnSync('sh', ['-c', `command -v ${c}`], { env: { PATH: SBIN_PATH } }).status !== 0);
}

/** Pids of every process in a named network namespace. */
export function netnsPids(ns: string): number[] {
  return spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', env: { PATH: SBIN_PATH } }).stdout.split('\n').filter(Boolean).map(Number);
}

/** SIGKILLs everything in the namespace (a machine losing power), then deletes it. */
export function destroyNetns(ns: string): void {
  for (const p of netnsPids(ns)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  spawnSync('ip', ['netns', 'del', ns], { env: { PATH: SBIN_PATH } });
}
