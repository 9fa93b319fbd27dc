import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot } from '../src/paths.js';

/** `vmwu` commands as a user types them, for the benchmarks that time them whole. */

const vmwu = join(packageRoot, 'bin', 'vmwu.js');

/** Runs `vmwu ARGS` to its end: its wall time and output; throws when it fails. */
export function cli(args: string[]): { ms: number; stdout: string; stderr: string } {
  const t = performance.now();
  const r = spawnSync(process.execPath, [vmwu, ...args], { encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`vmwu ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return { ms, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `vmwu run ARGS` and resolves once its job printed `marker`, with the run id. */
export function startRun(args: string[], marker: string): Promise<{ id: string; done: Promise<number | null>; kill(): void }> {
  const child = spawn(process.execPath, [vmwu, 'run', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const done = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  return new Promise((resolve, reject) => {
    const check = () => {
      const id = /run ([0-9a-f]{12})/.exec(err)?.[1];
      if (id && out.includes(marker)) resolve({ id, done, kill: () => child.kill('SIGINT') });
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; check(); });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; check(); });
    void done.then((c) => reject(new Error(`vmwu run ended (${c}) before ${marker}: ${err.slice(-1000)}`)));
  });
}
