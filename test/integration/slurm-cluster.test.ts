import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { localClusterUnavailable, startLocalCluster, type LocalCluster } from '../support/local-cluster.js';
import { hexOf, type Digest } from '../../src/store/blobs.js';
import { requireBase } from '../../src/store/bases.js';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { openStore, type Store } from '../../src/store/store.js';
import { fixtures, processesMentioning, startCli, testHome, tmp, until, vmwu } from '../support/harness.js';
import { fixturesDir } from '../support/fixture-path.js';
import { buildMpiUnit, mpiPlan, mpiProgram, mpiUnavailable, MPI_UNIT, nativeMpi } from '../support/mpi-unit.js';

/**
 * The Slurm executor on a real cluster of three nodes: slurmctld and slurmdbd
 * (with MariaDB) here, three slurmd each in network, UTS and mount namespaces of
 * their own, each reaching the store through its own sshfs mount, so the nodes
 * share no page cache, locks or shared memory with each other or with the
 * submitter. On n1 an empty file is bind-mounted over the store's vmwu.db: a
 * node that opened the database would write into it. Needs root; otherwise
 * skipped with a loud message.
 */
const opts = { nodes: 3, accounting: true, maxArraySize: 16, slurmdTimeout: 10 };
const skip = localClusterUnavailable(opts);
if (skip) process.stderr.write(`\n!!! SKIPPING the multi-node Slurm tests: ${skip} !!!\n\n`);

const plans = join(fixtures, 'cluster');
const unique = (stem: string) => `${stem}-${randomBytes(3).toString('hex')}`;

interface Attempt { attempt: number; status: string; host: string | null; batchId: string | null; error: string | null; runId: string | null; usage: { cpuMs: number; maxRssKiB: number; source: string } | null; vms?: { name: string; machine: string; status: string }[] | null }
interface JobResult { job: number; status: string; outputs: string[]; history: Attempt[] }

describe('Slurm executor on a real three-node cluster over sshfs', { skip, timeout: 1_200_000 }, () => {
  const dir = tmp('vmwu-cluster-');
  const store = testHome();
  const mask = join(dir, 'empty-vmwu.db');
  let cluster: LocalCluster;
  // Jobs get the submitter's environment: each node's instances and blob cache go to its own local disk.
  const env = () => ({ ...cluster.env, VMWU_SLURM_GRACE_MS: '3000', VMWU_SCRATCH: cluster.localPath! });
  const results = async (name: string): Promise<JobResult[]> => {
    const r = await vmwu(['results', name, '--json'], env());
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as JobResult[];
  };
  const peek = async (name: string): Promise<JobResult[] | undefined> => {
    const r = await vmwu(['results', name, '--json'], env());
    return r.code === 0 ? (JSON.parse(r.stdout) as JobResult[]) : undefined;
  };

  before(async () => {
    writeFileSync(mask, '');
    cluster = await startLocalCluster(join(dir, 'cluster'), { ...opts, share: [store], masks: { n1: [{ from: mask, to: join(store, 'vmwu.db') }] } });
  });

  after(async () => {
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('36 jobs spread over the nodes in several arrays; each runs once; node, task and sacct usage recorded; no node opens the database', async () => {
    const name = unique('cluster36');
    const r = await vmwu(['sweep', join(plans, 'thirty-six.pln'), '--base', 'tiny', '--name', name, '--executor', 'slurm',
      '--memory', '128M', '--timeout', '3m', '--retries', '0'], env());
    assert.equal(r.code, 0, r.stderr);
    // MaxArraySize 16: task ids 1..15, so 36 jobs go out as three arrays.
    assert.equal(r.stderr.match(/submitted Slurm array \d+/g)?.length, 3, r.stderr);
    const rs = await results(name);
    assert.equal(rs.length, 36);
    const nodes = new Set<string>();
    for (const j of rs) {
      assert.equal(j.status, 'succeeded', `job ${j.job}: ${JSON.stringify(j.history)}`);
      assert.equal(j.history.length, 1, `job ${j.job} ran once`);
      const a = j.history[0]!;
      assert.match(a.host ?? '', /^n[123]$/);
      nodes.add(a.host!);
      assert.match(a.batchId ?? '', /^\d+_\d+$/);
      assert.ok(a.usage && a.usage.cpuMs > 0 && a.usage.maxRssKiB > 64 * 1024, `job ${j.job}: usage ${JSON.stringify(a.usage)}`);
      assert.equal(a.usage.source, 'sacct', `job ${j.job}: usage from sacct`);
      assert.equal(readFileSync(j.outputs[0]!, 'utf8'), `job ${j.job} of ${name} attempt 1\n`);
    }
    assert.ok(nodes.size >= 2, `spread over ${[...nodes].join(', ')}`);
    assert.ok(nodes.has('n1'), 'n1 (which cannot see the database) ran jobs');
    assert.equal(statSync(mask).size, 0, 'no node wrote into the database');

    // The guest's output reached the submitter's logs, and the trace shows the nodes.
    const logs = await vmwu(['logs', `${name}/7`], env());
    assert.equal(logs.code, 0, logs.stderr);
    assert.equal(logs.stdout, 'hello from job 7\n');
    const trace = await vmwu(['results', name], env());
    assert.match(trace.stdout, /HOST\s+BATCH ID\s+CPU\s+PEAK RSS/);
    assert.match(trace.stdout, /\bn[123]\s+\d+_\d+\s+[\d.]+m?s\s+[\d.]+ MiB/);

    // Instances lived on the nodes' own local disks and are gone; the blobs were cached there once, by digest.
    const s = openStore(store);
    let root: Digest;
    try {
      root = requireBase(s.db, 'tiny').root;
      const nodeRuns = s.db.prepare(`SELECT COUNT(*) AS n FROM runs WHERE owner LIKE '%@n_/%'`).get() as { n: number };
      assert.equal(nodeRuns.n, 0, 'no node recorded a run in the database');
    } finally {
      s.close();
    }
    for (const n of cluster.nodes) {
      const user = join(n.local, `vmwu-${process.getuid!()}`);
      if (!nodes.has(n.name)) continue;
      assert.deepEqual(existsSync(join(user, 'instances')) ? readdirSync(join(user, 'instances')) : [], [], `${n.name}: no instance left`);
      assert.ok(existsSync(join(user, 'cache', 'blobs', hexOf(root))), `${n.name}: the base's root is cached by digest`);
    }
    const db = new Database(join(store, 'vmwu.db'), { readonly: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db.close();
    }
  });

  test('jobs of two VMs: an allocation of two nodes each, one VM per node on one segment (TLS between the nodes); --outputs all', async () => {
    const name = unique('pairs');
    const work = tmp('vmwu-cluster-pair-');
    cpSync(join(fixturesDir, 'multi-vm'), work, { recursive: true });
    const r = await vmwu(['sweep', join(work, 'pair.pln'), '--base', 'tiny', '--name', name, '--executor', 'slurm', '--nodes', '2', '--outputs', 'all',
      '--memory', '128M', '--timeout', '3m', '--retries', '0'], env());
    assert.equal(r.code, 0, r.stderr);
    const rs = await results(name) as (JobResult & { outDir: string })[];
    assert.deepEqual(rs.map((j) => readFileSync(j.outputs[0]!, 'utf8')), ['1 node1 2\n', '2 node1 2\n', '3 node1 2\n']);
    for (const j of rs) {
      const vms = j.history.at(-1)!.vms!;
      assert.deepEqual(vms.map((v) => [v.name, v.status]), [['node0', 'succeeded'], ['node1', 'succeeded']], JSON.stringify(j.history));
      assert.equal(new Set(vms.map((v) => v.machine)).size, 2, 'one VM on each of two nodes');
      assert.ok(vms.every((v) => /^n[123]$/.test(v.machine)));
      assert.equal(readFileSync(join(j.outDir, 'node-1', 'exit_code'), 'utf8').trim(), '0');
    }
    const script = readFileSync(join(store, 'experiments', name, 'slurm', 'round-1.sbatch'), 'utf8');
    assert.match(script, /^#SBATCH --nodes=2$/m);
  });

  test('MPI across two nodes: mpirun over a job of two VMs, one per node, gives what it gives natively', { skip: mpiUnavailable() }, async () => {
    const built = await buildMpiUnit();
    assert.equal(built.code, 0, built.stderr);
    const work = tmp('vmwu-cluster-mpi-');
    const native = nativeMpi(mpiProgram(work), 2);
    const name = unique('mpi');
    const r = await vmwu(['sweep', mpiPlan(work), '--unit', MPI_UNIT, '--name', name, '--executor', 'slurm', '--nodes', '2',
      '--memory', '256M', '--timeout', '5m', '--retries', '0'], env());
    assert.equal(r.code, 0, r.stderr);
    const [j] = await results(name);
    assert.equal(readFileSync(j!.outputs[0]!, 'utf8'), native);
    assert.equal(new Set(j!.history.at(-1)!.vms!.map((v) => v.machine)).size, 2);
  });

  test('the dashboard cancels a Slurm experiment (its arrays leave the queue, its VMs stop) and resumes it on the cluster', async () => {
    // The dashboard's worker (the submitter) passes its environment on, as the CLI's does.
    Object.assign(process.env, { SLURM_CONF: cluster.conf, VMWU_SLURM_GRACE_MS: '3000', VMWU_SCRATCH: cluster.localPath! });
    const name = unique('cluster-dash');
    let s: Store | undefined;
    let server: RunningServer | undefined;
    try {
      s = openStore(store);
      server = await startServer(s, { port: 0, token: randomBytes(16).toString('hex') });
      const auth = { authorization: `Bearer ${server.token}` };
      const csrf = ((await (await fetch(`${server.url}api/session`, { headers: auth })).json()) as { csrf: string }).csrf;
      const post = async (path: string) => {
        const res = await fetch(`${server!.url}${path}`, { method: 'POST', headers: { ...auth, 'x-csrf-token': csrf } });
        assert.equal(res.status, 200, await res.clone().text());
        return res.json() as Promise<{ state?: string; pid?: number }>;
      };
      const state = async () => ((await (await fetch(`${server!.url}api/experiments/${name}`, { headers: auth })).json()) as { state: string }).state;

      const r = await vmwu(['sweep', join(plans, 'first-attempt-sleeps.pln'), '--base', 'tiny', '--name', name, '--executor', 'slurm',
        '--memory', '128M', '--timeout', '15m', '--retries', '0', '--detach'], env());
      assert.equal(r.code, 0, r.stderr);
      // Both jobs are sleeping in their VMs on the nodes.
      await until(async () => (await peek(name))?.every((j) => j.history.some((a) => a.status === 'running' && a.host)));
      const running = (await results(name)).flatMap((j) => j.history.map((a) => a.runId!));
      await until(() => running.every((id) => processesMentioning(id).length === 1));

      // A node's job output reaches the dashboard's live log and `vmwu logs` while it runs.
      const ac = new AbortController();
      const res = await fetch(`${server.url}api/experiments/${name}/jobs/1/log`, { headers: auth, signal: ac.signal });
      let seen = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        seen += Buffer.from(chunk).toString('utf8');
        if (/event: log\ndata: \{"stream":"stdout","text":"sleeping\\n"\}/.test(seen)) break;
      }
      ac.abort();
      assert.match(seen, /event: attempt\ndata: \{"attempt":1,"runId":"[0-9a-f]+","host":"n[123]"\}/);
      assert.equal((await vmwu(['logs', `${name}/1`], env())).stdout, 'sleeping\n');

      assert.equal((await post(`api/experiments/${name}/cancel`)).state, 'cancelled');
      assert.equal(await state(), 'cancelled');
      const q = spawnSync('squeue', ['-h', '-n', `vmwu-${name}`, '-o', '%i %T'], { encoding: 'utf8', env: { ...process.env, ...cluster.env } });
      assert.equal(q.stdout.trim(), '', `still queued: ${q.stdout}`);
      for (const id of running) await until(() => processesMentioning(id).length === 0);
      for (const j of await results(name)) assert.deepEqual(j.history.map((a) => a.status), ['cancelled']);

      const resumed = await post(`api/experiments/${name}/resume`);
      assert.ok(resumed.pid! > 0);
      await until(async () => (await state()) === 'succeeded');
      for (const j of await results(name)) {
        assert.deepEqual(j.history.map((a) => a.status), ['cancelled', 'succeeded']);
        assert.match(j.history[1]!.host ?? '', /^n[123]$/);
        assert.equal(readFileSync(j.outputs[0]!, 'utf8'), `job ${j.job} attempt 2\n`);
      }
    } finally {
      await server?.close();
      s?.close();
      await vmwu(['cancel', name], env()).catch(() => undefined);
    }
  });

  // Last: the cluster has one node fewer afterwards.
  test('a node dies mid-sweep (slurmd, tasks and QEMUs killed): its jobs go back to pending, uncounted, and finish on the other nodes', async () => {
    const name = unique('cluster-fail');
    const run = startCli(['sweep', join(plans, 'node-failure.pln'), '--base', 'tiny', '--name', name, '--executor', 'slurm',
      '--memory', '128M', '--timeout', '3m', '--retries', '0'], env());
    const victim = cluster.nodes.find((n) => n.name === 'n2')!;
    // A job is sleeping in its VM on n2.
    const onVictim = await until(async () => (await peek(name))?.flatMap((j) => j.history).find((a) => a.host === 'n2' && a.status === 'running' && a.runId));
    await until(() => processesMentioning(onVictim.runId!).length === 1);
    victim.kill();
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    const rs = await results(name);
    let lost = 0;
    for (const j of rs) {
      assert.equal(j.status, 'succeeded', `job ${j.job}: ${JSON.stringify(j.history)}`);
      const ok = j.history.filter((a) => a.status === 'succeeded');
      assert.equal(ok.length, 1, `job ${j.job} succeeded exactly once`);
      for (const a of j.history.filter((x) => x.status !== 'succeeded')) {
        assert.equal(a.status, 'interrupted', `job ${j.job}: ${JSON.stringify(a)}`);
        assert.match(a.error ?? '', /lost: Slurm task \d+_\d+ ended NODE_FAIL/);
        lost++;
      }
      if (j.history.length > 1) assert.notEqual(ok[0]!.host, 'n2', `job ${j.job} finished on another node`);
      assert.equal(readFileSync(j.outputs[0]!, 'utf8'), `job ${j.job}\n`);
    }
    assert.ok(lost >= 1, 'the job running on n2 was lost with it');
    assert.deepEqual(victim.pids(), [], 'nothing of n2 is left');
    for (const a of rs.flatMap((j) => j.history)) if (a.runId) assert.deepEqual(processesMentioning(a.runId), [], `QEMU of ${a.runId} left running`);
  });
});
