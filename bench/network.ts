/**
 * What a guest network costs a run: `vmwu run --base tiny -- true` against the same
 * with `--network` (passt started, interface, route and resolver set up by the
 * agent). Runs alternate so machine noise hits both sides alike.
 *
 *   node dist/bench/network.js [runs]      (VMWU_HOME must hold the tiny base)
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot } from '../src/paths.js';
import { fmt, median } from './stats.js';

const runs = Number(process.argv[2] ?? 7);
const cli = join(packageRoot, 'bin', 'vmwu.js');

function timed(args: string[]): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [cli, 'run', '--base', 'tiny', ...args, '--', 'true'], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vmwu run ${args.join(' ')} failed: ${r.stderr}`);
  return performance.now() - t;
}

const plain: number[] = [];
const net: number[] = [];
timed([]);
for (let i = 0; i < runs; i++) {
  plain.push(timed([]));
  net.push(timed(['--network']));
}
const [p, n] = [median(plain), median(net)];
console.log(`vmwu run -- true            median ${fmt(p)}  (${runs} runs)`);
console.log(`vmwu run --network -- true  median ${fmt(n)}  (${runs} runs)`);
console.log(`network / none              ${(n / p).toFixed(3)}  (+${(n - p).toFixed(0)} ms)`);
