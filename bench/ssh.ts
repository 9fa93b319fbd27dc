/**
 * Bytes the SSH executor sends for a 20-job sweep of the tiny base on 2 hosts,
 * against a naive executor that ships the unit with every job (as VMM shipped a
 * VM snapshot per job). Two throw-away hosts (network namespaces + sshd) with
 * empty stores: the first sweep sends the unit once per host; a second sweep on
 * the same hosts sends none of it. Needs root, iproute2 and openssh-server.
 *
 *   node dist/bench/ssh.js     (VMWU_HOME must hold the tiny base)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { addHost } from '../src/executors/ssh/add.js';
import { sshExecutor } from '../src/executors/ssh/driver.js';
import { netnsHostsUnavailable, startNetnsHosts } from '../test/support/netns-hosts.js';
import { removeHost } from '../src/executors/ssh/hosts.js';
import { packageRoot } from '../src/paths.js';
import { openStore } from '../src/store/store.js';
import { createExperiment, runExperiment } from '../src/sweep/index.js';

const why = netnsHostsUnavailable();
if (why) {
  process.stderr.write(`bench/ssh: skipped: ${why}\n`);
  process.exit(0);
}
const plan = join(packageRoot, 'test', 'fixtures', 'ssh', 'bench-twenty.pln');
const dir = mkdtempSync(join(tmpdir(), 'vmwu-bench-ssh-'));
const pool = await startNetnsHosts(join(dir, 'pool'), 2);
const store = openStore();
const tag = dir.slice(-6).replace(/[^A-Za-z0-9]/g, 'x');
const names: string[] = [];
const mb = (n: number) => `${(n / 1024 ** 2).toFixed(2)} MB`;
try {
  for (const h of pool.hosts) {
    const name = `bench-${h.name}-${tag}`;
    names.push(name);
    await addHost(store.db, {
      spec: `root@${h.address}`, name, key: pool.key, labels: { bench: tag }, store: h.store,
      vmwu: `VMWU_ACCEL=tcg ${process.execPath} ${join(packageRoot, 'bin', 'vmwu.js')}`,
    });
  }
  for (const round of ['cold hosts (empty stores)', 'warm hosts (they hold the unit)']) {
    const e = await createExperiment(store, { planPath: plan, base: 'tiny', name: `bench-ssh-${tag}-${round.startsWith('cold') ? 1 : 2}`, memory: '128M' });
    const ex = sshExecutor({ hosts: `bench=${tag}` });
    const t = performance.now();
    const r = await runExperiment(store, e.name, { executor: ex });
    const wall = performance.now() - t;
    if (r.state !== 'succeeded') throw new Error(`sweep ${e.name} ${r.state}`);
    const stats = ex.stats();
    const sent = stats.reduce((a, s) => a + s.sentBytes, 0);
    const blobBytes = stats.reduce((a, s) => a + s.blobBytes, 0);
    const jobBytes = sent - blobBytes;
    const naive = e.jobCount * ex.unitBytes() + jobBytes;
    console.log(`${round}: ${e.jobCount} jobs on ${stats.length} hosts in ${(wall / 1000).toFixed(1)} s`);
    for (const s of stats) console.log(`  ${s.host}: ${s.jobs} jobs, ${s.blobsSent} blobs (${mb(s.blobBytes)}), ${mb(s.sentBytes)} sent in all`);
    console.log(`  sent ${mb(sent)} (unit ${mb(blobBytes)}, job archives ${mb(jobBytes)}); naive per-job transfer of the ${mb(ex.unitBytes())} unit: ${mb(naive)}`);
    console.log(`  ratio vmwu/naive: ${(sent / naive).toPrecision(2)}`);
  }
} finally {
  for (const n of names) removeHost(store.db, n);
  store.close();
  await pool.stop();
}
