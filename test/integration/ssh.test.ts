import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { netnsHostsUnavailable, startNetnsHosts, type NetnsPool } from '../support/netns-hosts.js';
import { imageSweepPlan, userImageBase } from '../support/oci-images.js';
import { fixturesDir } from '../support/fixture-path.js';
import { buildMpiUnit, mpiPlan, mpiProgram, mpiUnavailable, MPI_UNIT, nativeMpi } from '../support/mpi-unit.js';
import { countingPlan, countTo, fixtures, processesMentioning, root, startCli, testHome, tmp, until, vmwu, waitFor } from '../support/harness.js';
import { REMOTE_PROTOCOL } from '../../src/executors/ssh/protocol.js';

/**
 * The SSH executor against real sshd: two hosts made of network namespaces and
 * veth pairs, each with its own sshd, address, host key and vmwu store. Needs
 * root; otherwise skipped with a loud message.
 */
const skip = netnsHostsUnavailable();
if (skip) process.stderr.write(`\n!!! SKIPPING the SSH pool tests: ${skip} !!!\n\n`);

const plans = join(fixtures, 'ssh');

interface Attempt { status: string; host: string | null; error: string | null; usage: { cpuMs: number; maxRssKiB: number; source: string } | null; vms?: { name: string; machine: string; status: string }[] }
interface JobResult { job: number; status: string; outputs: string[]; history: Attempt[] }

describe('SSH host pool on two network-namespace hosts', { skip, timeout: 600_000 }, () => {
  const dir = tmp('vmwu-ssh-');
  let pool: NetnsPool;
  let names: string[] = [];
  const label = `pool=${dir.slice(-6).replace(/[^A-Za-z0-9]/g, 'x')}`;
  // The hosts run this very vmwu; the accelerator is forced so each fresh host store skips the KVM probe.
  const remoteVmwu = `VMWU_ACCEL=tcg ${process.execPath} ${join(root, 'bin', 'vmwu.js')}`;

  before(async () => {
    pool = await startNetnsHosts(join(dir, 'pool'), 2);
    names = pool.hosts.map((h) => `${h.name}-${label.slice(5)}`);
  });

  after(async () => {
    for (const n of names) await vmwu(['hosts', 'rm', n]);
    await pool?.stop();
    assert.deepEqual(processesMentioning(dir), [], 'no QEMU left behind on any host');
  });

  test('hosts add checks the host and records its key; a different key or fingerprint is refused', async () => {
    for (const [i, h] of pool.hosts.entries()) {
      const r = await vmwu(['hosts', 'add', `root@${h.address}`, '--name', names[i]!, '--key', pool.key, '--vmwu', remoteVmwu, '--store', h.store,
        '--label', label, '--label', `zone=${i + 1}`, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const added = JSON.parse(r.stdout) as { fingerprint: string; keyRecorded: boolean; info: { qemu: string; cores: number; protocol: number } };
      const expected = spawnSync('ssh-keygen', ['-lf', '-'], { input: h.hostKeyPub, encoding: 'utf8' }).stdout.split(' ')[1];
      assert.equal(added.fingerprint, expected, 'the fingerprint OpenSSH shows for the host key');
      assert.equal(added.keyRecorded, true);
      assert.ok(added.info.qemu && added.info.cores >= 1 && added.info.protocol === REMOTE_PROTOCOL);
    }
    // The second host's sshd answering under the first one's name: a changed key, refused.
    const changed = await vmwu(['hosts', 'add', `root@${pool.hosts[1]!.address}`, '--name', names[0]!, '--key', pool.key, '--vmwu', remoteVmwu]);
    assert.equal(changed.code, 125);
    assert.match(changed.stderr, /presented host key SHA256:\S+, not the recorded one; refusing to connect/);
    const wrong = await vmwu(['hosts', 'add', `root@${pool.hosts[0]!.address}`, '--name', 'impostor', '--key', pool.key, '--vmwu', remoteVmwu, '--fingerprint', 'SHA256:AAAA']);
    assert.equal(wrong.code, 125);
    assert.match(wrong.stderr, /not the expected SHA256:AAAA; not added/);
    const list = JSON.parse((await vmwu(['hosts', 'list', '--json'])).stdout) as { name: string; store: string }[];
    assert.deepEqual(list.filter((h) => names.includes(h.name) || h.name === 'impostor').map((h) => h.name), names);
    const check = await vmwu(['hosts', 'check', ...names, '--json']);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });

  test('--dry-run shows the placement over the selected hosts', async () => {
    const r = await vmwu(['sweep', join(plans, 'pool.pln'), '--base', 'tiny', '--executor', 'ssh', '--hosts', label, '--dry-run', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { jobs: unknown[]; placement: { hosts: { name: string; eligible: boolean; rank: number | null }[]; first: { host: string | null }[] } };
    assert.equal(out.jobs.length, 6);
    const mine = out.placement.hosts.filter((h) => names.includes(h.name));
    assert.deepEqual(mine.map((h) => h.eligible), [true, true]);
    assert.deepEqual(new Set(out.placement.first.map((f) => f.host).filter(Boolean)), new Set(names), 'the first jobs go to both hosts');
    const other = await vmwu(['sweep', join(plans, 'pool.pln'), '--base', 'tiny', '--executor', 'ssh', '--hosts', `${label},zone=2`, '--dry-run']);
    assert.match(other.stdout, new RegExp(`${names[0]}\\s+filtered.*label zone=2 wanted, host has zone=1`));
  });

  test('a sweep on a container image base: its layers reach the hosts, and its jobs run there as the image\'s user with its env', async () => {
    const base = `ssh-img-${label.slice(5)}`;
    userImageBase(testHome(), dir, base);
    const name = `sshimg-${label.slice(5)}`;
    const r = await vmwu(['sweep', imageSweepPlan(dir), '--base', base, '--executor', 'ssh', '--hosts', label, '--name', name, '--retries', '0', '--memory', '128M']);
    assert.equal(r.code, 0, r.stderr);
    const rs = JSON.parse((await vmwu(['results', name, '--json'])).stdout) as JobResult[];
    assert.deepEqual(rs.map((j) => j.status), ['succeeded', 'succeeded']);
    assert.deepEqual(rs.map((j) => readFileSync(j.outputs[0]!, 'utf8')).sort(), ['1 1000 hello\n', '2 1000 hello\n']);
    assert.ok(rs.every((j) => j.history.at(-1)?.host !== null), 'the jobs ran on the pool\'s hosts');
  });

  test('--nodes 2 --spread: each job\'s two VMs on the two hosts, one segment over SSH; --outputs all brings node1\'s back', async () => {
    const name = `sshpair-${label.slice(5)}`;
    const work = tmp('vmwu-ssh-pair-');
    cpSync(join(fixturesDir, 'multi-vm'), work, { recursive: true });
    const r = await vmwu(['sweep', join(work, 'pair.pln'), '--base', 'tiny', '--executor', 'ssh', '--hosts', label, '--name', name, '--retries', '0', '--memory', '128M',
      '--nodes', '2', '--spread', '--outputs', 'all']);
    assert.equal(r.code, 0, r.stderr);
    const rs = JSON.parse((await vmwu(['results', name, '--json'])).stdout) as (JobResult & { outDir: string })[];
    assert.deepEqual(rs.map((j) => readFileSync(j.outputs[0]!, 'utf8')), ['1 node1 2\n', '2 node1 2\n', '3 node1 2\n']);
    for (const j of rs) {
      const vms = j.history.at(-1)!.vms!;
      assert.deepEqual(vms.map((v) => [v.name, v.status]), [['node0', 'succeeded'], ['node1', 'succeeded']]);
      assert.deepEqual(new Set(vms.map((v) => v.machine)), new Set(names), 'the two VMs ran on different hosts');
      assert.equal(readFileSync(join(j.outDir, 'node-1', 'exit_code'), 'utf8').trim(), '0');
    }
    // Three VMs cannot be spread over two hosts: refused with the reason, not left waiting.
    const three = await vmwu(['sweep', join(work, 'pair.pln'), '--base', 'tiny', '--executor', 'ssh', '--hosts', label, '--name', `${name}-3`, '--retries', '0', '--memory', '128M',
      '--nodes', '3', '--spread']);
    assert.notEqual(three.code, 0);
    assert.match(three.stderr, /needs 3 hosts; the sweep can use 2/);
  });

  test('MPI across the two hosts: mpirun over a job of two VMs spread over them gives what it gives natively', { skip: mpiUnavailable() }, async () => {
    const built = await buildMpiUnit();
    assert.equal(built.code, 0, built.stderr);
    const work = tmp('vmwu-ssh-mpi-');
    const native = nativeMpi(mpiProgram(work), 2);
    const name = `sshmpi-${label.slice(5)}`;
    const r = await vmwu(['sweep', mpiPlan(work), '--unit', MPI_UNIT, '--executor', 'ssh', '--hosts', label, '--name', name, '--retries', '0',
      '--memory', '256M', '--timeout', '5m', '--nodes', '2', '--spread']);
    assert.equal(r.code, 0, r.stderr);
    const [j] = JSON.parse((await vmwu(['results', name, '--json'])).stdout) as JobResult[];
    assert.equal(readFileSync(j!.outputs[0]!, 'utf8'), native);
    assert.deepEqual(new Set(j!.history.at(-1)!.vms!.map((v) => v.machine)), new Set(names));
  });

  test('a sweep spreads over both hosts, sends the base once per host, and finishes on one host when the other goes off the network', async () => {
    const name = `ssh-${label.slice(5)}`;
    const run = startCli(['sweep', join(plans, 'pool.pln'), '--base', 'tiny', '--executor', 'ssh', '--hosts', label, '--host-timeout', '3s', '--name', name, '--retries', '0']);
    // Take the second host down while it runs jobs: its job dirs show on its (local) disk.
    const victim = pool.hosts[1]!;
    await waitFor('a job running on the second host', () => {
      const jobs = join(victim.store, 'remote-jobs');
      return existsSync(jobs) && readdirSync(jobs).some((j) => existsSync(join(jobs, j, 'run-id')));
    }, 240_000);
    // Booting by now: the job sleeps for seconds after boot, so it is still running there.
    await new Promise((r) => setTimeout(r, 1500));
    victim.down();
    const r = await run.done;
    victim.up();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`host ${names[1]} was lost: .*its jobs go to the other hosts`));
    // The unit's three blobs (kernel, initrd, root) went to each host once, not once per job.
    for (const n of names) {
      const sends = r.stderr.split('\n').filter((l) => l.includes(`host ${n}: sending blob`));
      assert.ok(sends.length <= 3, `${n}: ${sends.join('; ')}`);
    }
    const results = JSON.parse((await vmwu(['results', name, '--json'])).stdout) as JobResult[];
    assert.equal(results.length, 6);
    const hostsUsed = new Set<string>();
    let lost = 0;
    for (const j of results) {
      assert.equal(j.status, 'succeeded');
      const ok = j.history.filter((a) => a.status === 'succeeded');
      assert.equal(ok.length, 1, `job ${j.job} succeeded exactly once`);
      // What the job's QEMU used, measured on its host and sent back with the result.
      assert.ok(ok[0]!.usage && ok[0]!.usage.cpuMs > 0 && ok[0]!.usage.maxRssKiB > 0 && ok[0]!.usage.source === 'proc', JSON.stringify(ok[0]));
      for (const a of j.history) if (a.host) hostsUsed.add(a.host);
      const lostHere = j.history.filter((a) => a.status === 'interrupted');
      for (const a of lostHere) {
        assert.equal(a.host, names[1]);
        assert.match(a.error!, /HOST_LOST/);
      }
      if (lostHere.length) assert.equal(ok[0]!.host, names[0], `job ${j.job} lost on the downed host finished on the other`);
      lost += lostHere.length;
      const text = readFileSync(j.outputs[0]!, 'utf8');
      assert.match(text, new RegExp(`^job ${j.job} on `));
      assert.match(text, /staged in over ssh/);
    }
    assert.ok(lost >= 1, 'at least one job was running on the downed host');
    assert.deepEqual(hostsUsed, new Set(names), 'the sweep used both hosts');
    // Guest output streamed back live is there for vmwu logs.
    const logs = await vmwu(['logs', `${name}/1`]);
    assert.equal(logs.code, 0, logs.stderr);
  });

  test('hosts drain: running jobs stop at a checkpoint, move to the other host and count 1..N exactly once', async () => {
    const name = `drain-${label.slice(5)}`;
    const [a, b] = names as [string, string];
    const plan = countingPlan(2, 16, 'count-${jobindex}');
    // Only the first host takes jobs at first.
    assert.equal((await vmwu(['hosts', 'drain', b, '--no-wait'])).code, 0);
    const listed = JSON.parse((await vmwu(['hosts', 'list', '--json'])).stdout) as { name: string; drainedAt: string | null }[];
    assert.ok(listed.find((h) => h.name === b)?.drainedAt, 'hosts list shows the drain');
    const sweep = startCli(['sweep', plan, '--base', 'tiny', '--executor', 'ssh', '--hosts', label, '--name', name, '--retries', '0']);
    const attemptLog = (job: number) => join(testHome(), 'experiments', name, 'jobs', String(job), 'attempt-1', 'stdout');
    await waitFor('a job half way through its count on the first host', () => [1, 2].some((j) => existsSync(attemptLog(j)) && readFileSync(attemptLog(j), 'utf8').includes('n 5\n')), 240_000);
    assert.equal((await vmwu(['hosts', 'undrain', b])).code, 0);
    const drain = await vmwu(['hosts', 'drain', a, '--timeout', '3m', '--json']);
    if (drain.code !== 0) {
      sweep.child.kill('SIGINT');
      assert.fail(`drain: ${drain.stdout}\n--- the sweep said:\n${(await sweep.done).stderr}`);
    }
    const moved = (JSON.parse(drain.stdout) as { jobs: { job: number; status: string; checkpoint: string | null }[] }).jobs.filter((j) => j.checkpoint);
    assert.ok(moved.length >= 1, `a running job moved: ${drain.stdout}`);
    const r = await sweep.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`host ${a} is drained`));

    interface Result { job: number; status: string; history: { status: string; host: string | null; error: string | null; start: { checkpoint?: string } | null }[] }
    const results = JSON.parse((await vmwu(['results', name, '--json'])).stdout) as Result[];
    for (const j of results) {
      assert.equal(j.status, 'succeeded', JSON.stringify(j));
      assert.equal(j.history.filter((x) => x.status === 'succeeded').length, 1, `job ${j.job} succeeded once`);
      assert.equal(readFileSync(join(testHome(), 'experiments', name, 'results', `count-${j.job}`), 'utf8'), countTo(16), `job ${j.job} counted 1..16 exactly once`);
      const logs = await vmwu(['logs', `${name}/${j.job}`]);
      assert.deepEqual(logs.stdout.split('\n').filter((l) => l.startsWith('n ')), Array.from({ length: 16 }, (_, i) => `n ${i + 1}`), `job ${j.job}: its log holds each step once`);
    }
    for (const m of moved) {
      const j = results.find((x) => x.job === m.job)!;
      assert.deepEqual(j.history.map((x) => [x.status, x.host]), [['interrupted', a], ['succeeded', b]], JSON.stringify(j.history));
      assert.match(j.history[0]!.error!, new RegExp(`checkpoint ${m.checkpoint}`));
      assert.equal(j.history[1]!.start?.checkpoint, m.checkpoint, 'the attempt on the other host went on from the checkpoint (another store)');
    }
    // Nothing of the moved jobs is left on the drained host: job dirs, checkpoints, QEMU.
    const left = (d: string) => (existsSync(d) ? readdirSync(d) : []);
    assert.deepEqual(left(join(pool.hosts[0]!.store, 'remote-jobs')), []);
    assert.deepEqual(left(join(pool.hosts[0]!.store, 'checkpoints')), []);
    assert.equal((await vmwu(['hosts', 'undrain', a])).code, 0);
  });

  test('--checkpoint-every on the pool: a job whose host is lost goes on from its latest checkpoint on the other host', async () => {
    const name = `lost-${label.slice(5)}`;
    const sweep = startCli(['sweep', countingPlan(1, 20, 'count'), '--base', 'tiny', '--executor', 'ssh', '--hosts', label, '--host-timeout', '3s', '--name', name,
      '--retries', '0', '--checkpoint-every', '2s']);
    interface Result { status: string; history: { status: string; host: string | null; error: string | null; start: { checkpoint?: string } | null }[] }
    const results = async () => JSON.parse((await vmwu(['results', name, '--json'])).stdout) as Result[];
    const fetched = await until(async () => {
      const cks = JSON.parse((await vmwu(['checkpoints', '--json'])).stdout) as { id: string; experiment: string | null; dir: string }[];
      return cks.filter((c) => c.experiment === name).length >= 2 && cks;
    });
    // Checkpointed every so often, the job's RAM is a file of its own, fetched with the rest.
    for (const c of fetched.filter((x) => x.experiment === name)) assert.ok(existsSync(join(c.dir, 'memory')), `${c.id} holds the guest's RAM file`);
    const where = (await results())[0]!.history[0]!.host!;
    const victim = pool.hosts[names.indexOf(where)]!;
    victim.down();
    const r = await sweep.done;
    victim.up();
    assert.equal(r.code, 0, r.stderr);
    const [job] = await results();
    assert.deepEqual(job!.history.map((a) => [a.status, a.host]), [['interrupted', where], ['succeeded', names.find((n) => n !== where)]], JSON.stringify(job));
    assert.match(job!.history[0]!.error!, /HOST_LOST/);
    assert.ok(job!.history[1]!.start?.checkpoint, 'the job went on from a checkpoint fetched before its host was lost, not from zero');
    assert.equal(readFileSync(join(testHome(), 'experiments', name, 'results', 'count'), 'utf8'), countTo(20));
    const logs = await vmwu(['logs', `${name}/1`]);
    assert.deepEqual(logs.stdout.split('\n').filter((l) => l.startsWith('n ')), Array.from({ length: 20 }, (_, i) => `n ${i + 1}`));
  });

  test('a dataset travels to each host once, by digest, and every job reads it at /data/NAME', async () => {
    const src = tmp('vmwu-ssh-data-');
    writeFileSync(join(src, 'table.txt'), 'alpha 1\nbeta 2\n');
    const data = `pooldata${process.pid}`;
    const added = JSON.parse((await vmwu(['data', 'add', src, '--name', data, '--json'])).stdout) as { digest: string };
    const plan = join(tmp('vmwu-ssh-plan-'), 'data.pln');
    writeFileSync(plan, ['parameter i integer range from 1 to 4', 'task main',
      `    shexec "grep -c . /data/${data}/table.txt > n.txt"`, '    copy node:n.txt root:n-${jobindex}.txt', 'endtask', ''].join('\n'));
    const name = `data-${label.slice(5)}`;
    const r = await vmwu(['sweep', plan, '--base', 'tiny', '--executor', 'ssh', '--hosts', label, '--name', name, '--data', data]);
    assert.equal(r.code, 0, r.stderr);
    for (const n of names) {
      const sends = r.stderr.split('\n').filter((l) => l.includes(`host ${n}: sending blob ${added.digest.slice(7, 19)}`));
      assert.ok(sends.length <= 1, `${n} got the dataset at most once: ${sends.join('; ')}`);
    }
    for (let j = 1; j <= 4; j++) assert.equal(readFileSync(join(testHome(), 'experiments', name, 'results', `n-${j}.txt`), 'utf8'), '2\n');
    const held = pool.hosts.filter((h) => existsSync(join(h.store, 'blobs', 'sha256', added.digest.slice(7))));
    assert.ok(held.length >= 1, 'the hosts that ran jobs hold the dataset\'s blob');
  });
});
