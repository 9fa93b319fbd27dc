/**
 * Per-job overhead of the Slurm executor against the local one: the same 8-job
 * sweep of trivial jobs on the tiny base, with 2 at once, through `vmwu sweep`
 * locally and through a throw-away one-node Slurm cluster (sbatch --array, each
 * task running `vmwu sweep-task`). Needs root and slurm-wlm + munge.
 *
 *   node dist/bench/slurm.js [repeats]     (VMWU_HOME must hold the tiny base)
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { localClusterUnavailable, startLocalCluster } from '../src/executors/slurm/local-cluster.js';
import { median } from './stats.js';
import { packageRoot } from '../src/paths.js';

const repeats = Number(process.argv[2] ?? 2);
const jobs = 8;
const parallel = 2;
const plan = join(packageRoot, 'test', 'fixtures', 'executors', 'bench-eight.pln');
const vmwu = join(packageRoot, 'bin', 'vmwu.js');
const why = localClusterUnavailable();
if (why) {
  process.stderr.write(`bench/slurm: skipped: ${why}\n`);
  process.exit(0);
}
const cluster = await startLocalCluster(mkdtempSync(join(tmpdir(), 'vmwu-bench-slurm-')));

function sweep(extra: string[]): number {
  const name = `bench-${randomBytes(3).toString('hex')}`;
  const t = performance.now();
  const r = spawnSync(process.execPath, [vmwu, 'sweep', plan, '--base', 'tiny', '--name', name, '--memory', '128M', '--timeout', '2m', ...extra],
    { env: { ...process.env, ...cluster.env }, encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`vmwu sweep ${extra.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms;
}

try {
  const local: number[] = [];
  const slurm: number[] = [];
  for (let i = 0; i < repeats; i++) {
    local.push(sweep(['--slots', String(parallel)]));
    slurm.push(sweep(['--executor', 'slurm', '--max-parallel', String(parallel)]));
  }
  const l = median(local);
  const s = median(slurm);
  console.log(`${jobs} trivial jobs, ${parallel} at once, median of ${repeats}:`);
  console.log(`  local executor:  ${(l / 1000).toFixed(2)} s   (${(l / jobs).toFixed(0)} ms per job)   runs: ${local.map((x) => (x / 1000).toFixed(2)).join(' ')}`);
  console.log(`  slurm executor:  ${(s / 1000).toFixed(2)} s   (${(s / jobs).toFixed(0)} ms per job)   runs: ${slurm.map((x) => (x / 1000).toFixed(2)).join(' ')}`);
  console.log(`  Slurm path overhead: ${((s - l) / jobs).toFixed(0)} ms per job; ratio slurm/local ${(s / l).toFixed(2)}`);
} finally {
  await cluster.stop();
}
