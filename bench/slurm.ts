/**
 * The Slurm executor on a three-node cluster of this machine (issue 10): three
 * slurmd in network, UTS and mount namespaces of their own, the store reached by
 * each through its own sshfs mount, slurmdbd for accounting. Needs root.
 *
 * 1. Per-job overhead: the same sweep of trivial jobs on the tiny base through
 *    the local executor (2 slots: the machine's 2 cores) and through Slurm (3 nodes
 *    of 1 CPU each, sharing those 2 cores), as wall time per job and as a ratio.
 * 2. Scale: a sweep of N jobs (default 1,000) on the cluster, run by the
 *    submitter in this process, whose CPU time (process.cpuUsage: its own and its
 *    thread pool's, not the nodes') is divided by N. Target: ≤ 5 ms per job.
 *
 *   node dist/bench/slurm.js [overhead-jobs=12] [scale-jobs=1000]   (VMWU_HOME must hold the tiny base)
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { localClusterUnavailable, startLocalCluster } from '../test/support/local-cluster.js';
import { setExecutor } from '../src/sweep/executor-choice.js';
import { runSlurmExperiment } from '../src/executors/slurm/submitter.js';
import { packageRoot } from '../src/paths.js';
import { storeRoot } from '../src/store/home.js';
import { openStore } from '../src/store/store.js';
import { createExperiment, experimentResults } from '../src/sweep/experiment.js';

const overheadJobs = Number(process.argv[2] ?? 12);
const scaleJobs = Number(process.argv[3] ?? 1000);
const opts = { nodes: 3, accounting: true, slurmdTimeout: 30 };
const why = localClusterUnavailable(opts);
if (why) {
  process.stderr.write(`bench/slurm: skipped: ${why}\n`);
  process.exit(0);
}
const store = storeRoot();
const work = mkdtempSync(join(tmpdir(), 'vmwu-bench-slurm-'));
const vmwu = join(packageRoot, 'bin', 'vmwu.js');
const plan = (n: number) => {
  const p = join(work, `trivial-${n}.pln`);
  writeFileSync(p, `parameter i integer range from 1 to ${n}\ntask main\n    shexec "echo $i > out.txt"\nendtask\n`);
  return p;
};

const t0 = performance.now();
const cluster = await startLocalCluster(join(work, 'cluster'), { ...opts, share: [store] });
console.log(`cluster of ${cluster.nodes.length} nodes (sshfs, slurmdbd) up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
// Jobs get the submitter's environment: each node's instances and blob cache on its own local disk.
const env = { ...process.env, ...cluster.env, VMWU_HOME: store, VMWU_SLURM_GRACE_MS: '5000', VMWU_SCRATCH: cluster.localPath! };
Object.assign(process.env, { SLURM_CONF: cluster.conf, VMWU_SLURM_GRACE_MS: '5000', VMWU_SCRATCH: cluster.localPath! });

function sweep(extra: string[], n: number): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [vmwu, 'sweep', plan(n), '--base', 'tiny', '--name', `bench-${randomBytes(3).toString('hex')}`, '--memory', '128M', '--timeout', '5m', ...extra],
    { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`vmwu sweep ${extra.join(' ')} failed (${r.status}): ${r.stderr}`);
  return performance.now() - t;
}

try {
  if (overheadJobs > 0) {
  const local = sweep(['--slots', '2'], overheadJobs);
  const slurm = sweep(['--executor', 'slurm'], overheadJobs);
  console.log(`${overheadJobs} trivial jobs:`);
  console.log(`  local executor (2 slots):         ${(local / 1000).toFixed(1)} s   ${(local / overheadJobs).toFixed(0)} ms per job`);
  console.log(`  Slurm, 3 nodes over sshfs:        ${(slurm / 1000).toFixed(1)} s   ${(slurm / overheadJobs).toFixed(0)} ms per job`);
  console.log(`  ratio slurm/local: ${(slurm / local).toFixed(2)}   (the nodes share the same 2 cores: no speed-up is possible here)`);
  }

  if (scaleJobs > 0) {
    const s = openStore(store);
    try {
      const e = await createExperiment(s, { planPath: plan(scaleJobs), base: 'tiny', name: `bench-scale-${randomBytes(3).toString('hex')}`, memory: '128M', timeout: '5m' });
      setExecutor(s.db, e.name, { kind: 'slurm', options: {} });
      let arrays = 0;
      const c0 = process.cpuUsage();
      const w0 = performance.now();
      const r = await runSlurmExperiment(s, e.name, { onEvent: (ev) => { if (ev.type === 'info' && ev.message.startsWith('submitted')) arrays++; } });
      const wall = performance.now() - w0;
      const cpu = process.cpuUsage(c0);
      const cpuMs = (cpu.user + cpu.system) / 1000;
      const res = experimentResults(s, e.name);
      const byNode = new Map<string, number>();
      for (const j of res) {
        const last = j.history[j.history.length - 1];
        byNode.set(last?.host ?? '?', (byNode.get(last?.host ?? '?') ?? 0) + 1);
      }
      const sacct = res.filter((j) => j.history.at(-1)?.usage?.source === 'sacct').length;
      console.log(`${scaleJobs} jobs on the cluster: ${r.state} (${r.counts.succeeded} succeeded, ${r.counts.failed} failed) in ${(wall / 60_000).toFixed(1)} min, ${arrays} arrays`);
      console.log(`  jobs per node: ${[...byNode].sort().map(([n, c]) => `${n} ${c}`).join(', ')}; usage from sacct for ${sacct}`);
      console.log(`  submitter CPU: ${(cpuMs / 1000).toFixed(2)} s = ${(cpuMs / scaleJobs).toFixed(2)} ms per job (target ≤ 5 ms)`);
    } finally {
      s.close();
    }
  }
} finally {
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}
