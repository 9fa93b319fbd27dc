/**
 * Plan limits (issue 11, defect 9): how long the job cap takes to refuse a plan
 * of 10^11 jobs, and how long checking and storing 100,000 jobs in batches takes,
 * with the longest the event loop (a dashboard's requests) had to wait meanwhile.
 * No VM boots; a throwaway store in a temporary directory.
 *
 *   node dist/bench/plans.js [jobs]     (default 100000, the default --max-jobs)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isVmwuError } from '../src/errors.js';
import { registerBase } from '../src/store/bases.js';
import type { Digest } from '../src/store/blobs.js';
import { openStore } from '../src/store/store.js';
import { createExperiment, loadPlan } from '../src/sweep/index.js';

const jobs = Number(process.argv[2] ?? 100_000);
const dir = mkdtempSync(join(tmpdir(), 'vmwu-bench-plans-'));
try {
  const huge = join(dir, 'huge.pln');
  writeFileSync(huge, 'parameter a integer range from 1 to 100000\nparameter b integer range from 1 to 1000000\ntask main\n  exec echo $a $b\nendtask\n');
  const runs = 50;
  let t = performance.now();
  for (let i = 0; i < runs; i++) {
    try {
      loadPlan(huge);
      throw new Error('the 10^11-job plan was not refused');
    } catch (e) {
      if (!isVmwuError(e) || e.code !== 'TOO_MANY_JOBS') throw e;
    }
  }
  console.log(`cap check, 10^11-job plan refused (read + parse + count): ${((performance.now() - t) / runs).toFixed(2)} ms per plan (mean of ${runs})`);

  const store = openStore(join(dir, 'store'));
  const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
  registerBase(store.db, {
    name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0,
  });
  const plan = join(dir, 'big.pln');
  writeFileSync(plan, `parameter i integer range from 1 to ${jobs}\ntask main\n  exec work $i\n  copy node:out.txt root:out-\${jobindex}.txt\nendtask\n`);
  // How long other work (a request) waits at most: the gap between two turns of a spinning task.
  let last = performance.now();
  let maxGap = 0;
  let spinning = true;
  const spin = () => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    if (spinning) setImmediate(spin);
  };
  t = performance.now();
  last = t;
  spin();
  const e = await createExperiment(store, { planPath: plan, base: 'fake', name: 'bench', maxJobs: Math.max(jobs, 1) });
  spinning = false;
  const ms = performance.now() - t;
  console.log(`${e.jobCount} jobs checked and stored in batches of 2,000: ${(ms / 1000).toFixed(2)} s (${(ms * 1000 / e.jobCount).toFixed(1)} µs per job); longest wait of other work: ${maxGap.toFixed(1)} ms`);
  store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
