import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { processesMentioning, startCli, testHome, tmp, until, vmwu } from '../support/harness.js';
import { nodeDirs } from '../../src/run/node-dirs.js';
import { fixturesDir } from '../support/fixture-path.js';

/**
 * Multi-VM jobs on one host (`vmwu run --nodes N`): N VMs of the tiny base on a
 * private segment of their own; the command on node0 sees every VM by name and
 * address, reaches them, and reaches nothing else; one VM killed fails the whole
 * job with that VM named, and nothing is left running.
 */

interface VmJson { index: number; name: string; machine: string; runId: string; status: string; start?: string; error?: string }
interface SweepResult { outputs: string[]; history: { vms: VmJson[] | null }[] }
interface RunJson { id: string; status: string; exitCode: number | null; outDir: string; error?: { code: string; message: string }; vms: VmJson[] }

// This file's own node-local scratch: the hubs' directories it looks for are its jobs' only (other files run multi-VM jobs too).
const scratch = tmp('vmwu-multi-vm-');
chmodSync(scratch, 0o711);
const env = { VMWU_SCRATCH: scratch };
const instances = nodeDirs(undefined, testHome(), env).instances;
interface RunRow { id: string; status: string; argv: string[]; qemuPid: number | null; scratchDir: string | null }
/** A run of this file's jobs, not of another file's running beside it. */
const ours = (r: RunRow) => Boolean(r.scratchDir?.startsWith(`${instances}/`));
const segmentsLeft = () => (existsSync(instances) ? readdirSync(instances).filter((n) => n.startsWith('segment-')) : []);

/** One of this host's own addresses: the segment must not reach it. */
function hostAddress(): string {
  return Object.values(networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address ?? '127.0.0.1';
}

describe('multi-VM jobs on one host', { concurrency: 1, timeout: 600_000 }, () => {
  test('three VMs: node0 has the hosts and hostfile, reaches node1 and node2 on the segment, and has no route out; --outputs all keeps every VM\'s', async () => {
    const before = segmentsLeft();
    const out = join(tmp('vmwu-multi-vm-out-'), 'out');
    const r = await vmwu(['run', '--json', '--nodes', '3', '--outputs', 'all', '--out', out, '--memory', '128M', '--base', 'tiny', '--', 'sh', '-c', [
      'echo zero >mine.txt', '/run/vmwu/rsh node2 "hostname >mine.txt"',
      // Each VM its own identity and seed, clones of one template as they are: machine id and random bytes.
      'for n in node0 node1 node2; do /run/vmwu/rsh $n "cat /etc/machine-id; head -c 16 /dev/urandom | od -An -tx1 | tr -d \\" \\n\\"; echo"; done >ids.txt',
      'hostname', 'grep node /etc/hosts', 'cat "$VMWU_HOSTFILE"',
      'ping -c 1 -W 2 node1 >/dev/null && echo node1 answers', 'ping -c 1 -W 2 10.213.0.3 >/dev/null && echo node2 answers',
      `for a in 10.0.2.2 ${hostAddress()}; do ping -c 1 -W 2 $a >/dev/null 2>&1 && echo reached $a; done; echo no way out`,
    ].join('; ')], env);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as RunJson;
    assert.equal(res.status, 'succeeded');
    assert.deepEqual(res.vms.map((v) => [v.name, v.status]), [['node0', 'succeeded'], ['node1', 'succeeded'], ['node2', 'succeeded']]);
    // Fast start: every VM a clone of the template of its shape.
    assert.deepEqual(res.vms.map((v) => v.start), ['restore', 'restore', 'restore']);
    const ids = readFileSync(join(out, 'work', 'ids.txt'), 'utf8').trim().split('\n');
    assert.equal(ids.length, 6, ids.join('|'));
    assert.equal(new Set(ids).size, 6, `machine ids and seeds all differ: ${ids.join(' ')}`);
    // Each VM's outputs: VM 0's where a job's go, the others' under node-K/ (node1 wrote nothing of its own).
    assert.equal(readFileSync(join(out, 'work', 'mine.txt'), 'utf8'), 'zero\n');
    assert.equal(readFileSync(join(out, 'node-2', 'work', 'mine.txt'), 'utf8'), 'node2\n');
    assert.equal(existsSync(join(out, 'node-1', 'work', 'mine.txt')), false);
    assert.equal(readFileSync(join(out, 'node-1', 'exit_code'), 'utf8').trim(), '0');
    assert.equal(readFileSync(join(res.outDir, 'stdout'), 'utf8'), [
      'node0', '10.213.0.1 node0', '10.213.0.2 node1', '10.213.0.3 node2',
      'node0', 'node1', 'node2', 'node1 answers', 'node2 answers', 'no way out', '',
    ].join('\n'));
    assert.deepEqual(segmentsLeft(), before, 'the hub\'s directory is gone');
  });

  test('one VM killed mid-job: the job fails naming it, every VM stops, nothing is left', async () => {
    const before = segmentsLeft();
    const run = startCli(['run', '--json', '--nodes', '2', '--memory', '128M', '--base', 'tiny', '--', 'sh', '-c', 'sleep 600'], env);
    // node1's QEMU: the second run of the job to be running.
    const node1 = await until(async () => {
      const list = JSON.parse((await vmwu(['runs', '--json', '-n', '10'])).stdout) as RunRow[];
      return list.find((x) => ours(x) && x.status === 'running' && x.argv.join(' ').includes('vmwu-release') && x.qemuPid)?.qemuPid ?? undefined;
    });
    // Nothing else can join: each VM's socket went when its QEMU connected, and the hub's directory is private.
    const dirs = segmentsLeft().filter((d) => !before.includes(d));
    assert.equal(dirs.length, 1);
    const hubDir = join(instances, dirs[0]!);
    await until(() => readdirSync(hubDir).length === 0);
    assert.equal(statSync(hubDir).mode & 0o777, 0o700);
    // A checkpoint of one VM alone is refused with the reason.
    const list = JSON.parse((await vmwu(['runs', '--json', '-n', '10'])).stdout) as RunRow[];
    const node0 = list.find((x) => ours(x) && x.status === 'running' && x.argv.join(' ').includes('sleep 600'))!;
    const ck = await vmwu(['checkpoint', node0.id]);
    assert.notEqual(ck.code, 0);
    assert.match(ck.stderr, /a VM of a multi-VM job \(--nodes\) cannot be checkpointed alone/);
    process.kill(node1, 'SIGKILL');
    const r = await run.done;
    const res = JSON.parse(r.stdout) as RunJson;
    assert.equal(res.status, 'failed', r.stderr);
    assert.match(res.error?.message ?? '', /VM 1 \(node1\) of the job failed/);
    assert.deepEqual(res.vms.map((v) => [v.name, v.status]), [['node0', 'stopped'], ['node1', 'error']]);
    assert.notEqual(r.code, 0);
    for (const v of res.vms) assert.equal(processesMentioning(v.runId).length, 0, `no QEMU of ${v.name} left`);
    assert.deepEqual(segmentsLeft(), before);
    // A retry starts every VM again, and succeeds.
    const again = await vmwu(['run', '--json', '--nodes', '2', '--memory', '128M', '--base', 'tiny', '--', 'sh', '-c', 'ping -c 1 -W 2 node1 >/dev/null && echo again'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(readFileSync(join((JSON.parse(again.stdout) as RunJson).outDir, 'stdout'), 'utf8'), 'again\n');
    assert.deepEqual(segmentsLeft(), before);
  });

  test('isolation: a second job beside the first cannot reach its VMs, and neither reaches the host', async () => {
    // Job A has three VMs (10.213.0.1-3); job B, two (.1-.2) on a segment of its own at the same addresses:
    // B reaching .3 would be reaching A's node2.
    const a = startCli(['run', '--json', '--nodes', '3', '--memory', '128M', '--base', 'tiny', '--', 'sh', '-c', 'sleep 600'], env);
    await until(async () => {
      const list = JSON.parse((await vmwu(['runs', '--json', '-n', '10'])).stdout) as RunRow[];
      return list.filter((x) => ours(x) && x.status === 'running' && x.argv.join(' ').includes('vmwu-release')).length === 2;
    });
    const b = await vmwu(['run', '--json', '--nodes', '2', '--memory', '128M', '--base', 'tiny', '--', 'sh', '-c', [
      'ping -c 1 -W 2 10.213.0.2 >/dev/null && echo own node1 answers',
      'ping -c 2 -W 2 10.213.0.3 >/dev/null 2>&1 && echo reached the other job',
      'arping -c 2 -w 3 -I eth0 10.213.0.3 >/dev/null 2>&1 && echo the other job answers arp',
      `for h in 10.0.2.2 ${hostAddress()}; do ping -c 1 -W 2 $h >/dev/null 2>&1 && echo reached $h; done`,
      'echo done',
    ].join('; ')], env);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(readFileSync(join((JSON.parse(b.stdout) as RunJson).outDir, 'stdout'), 'utf8'), 'own node1 answers\ndone\n');
    process.kill(a.child.pid!, 'SIGINT');
    const ra = await a.done;
    const resA = JSON.parse(ra.stdout) as RunJson;
    for (const v of resA.vms) assert.equal(processesMentioning(v.runId).length, 0);
  });

  test('--network beside the segment: node0 has both, its default route goes out through passt, and node1 is still on the segment', async () => {
    const r = await vmwu(['run', '--json', '--nodes', '2', '--network', '--memory', '128M', '--base', 'tiny', '--', 'sh', '-c', [
      'ip -4 addr show | grep "inet " | grep -v 127.0.0.1 | awk \'{print $2}\' | cut -d/ -f1 | sort',
      'ip route | grep ^default | cut -d" " -f1-3', 'ping -c 1 -W 2 node1 >/dev/null && echo node1 answers',
    ].join('; ')], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join((JSON.parse(r.stdout) as RunJson).outDir, 'stdout'), 'utf8'), '10.0.2.15\n10.213.0.1\ndefault via 10.0.2.2\nnode1 answers\n');
  });

  test('a sweep of three jobs of two VMs each, and one whose jobs take their VMs from a plan parameter', async () => {
    const out = tmp('vmwu-multi-vm-sweep-');
    cpSync(join(fixturesDir, 'multi-vm'), out, { recursive: true });
    const name = `pairs-${process.pid}`;
    const r = await vmwu(['sweep', join(out, 'pair.pln'), '--base', 'tiny', '--name', name, '--nodes', '2', '--memory', '128M', '--retries', '0', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const results = JSON.parse((await vmwu(['results', name, '--json'], env)).stdout) as SweepResult[];
    assert.deepEqual(results.map((j) => readFileSync(j.outputs[0]!, 'utf8')), ['1 node1 2\n', '2 node1 2\n', '3 node1 2\n']);
    for (const j of results) assert.deepEqual(j.history.at(-1)!.vms!.map((v) => [v.name, v.status]), [['node0', 'succeeded'], ['node1', 'succeeded']]);

    const ranks = `ranks-${process.pid}`;
    const r2 = await vmwu(['sweep', join(out, 'ranks.pln'), '--base', 'tiny', '--name', ranks, '--nodes', 'n', '--memory', '128M', '--retries', '0', '--json'], env);
    assert.equal(r2.code, 0, r2.stderr);
    const byRanks = JSON.parse((await vmwu(['results', ranks, '--json'], env)).stdout) as SweepResult[];
    assert.deepEqual(byRanks.map((j) => readFileSync(j.outputs[0]!, 'utf8')), ['1 0\n', '3 3\n']);
    assert.deepEqual(byRanks.map((j) => j.history.at(-1)!.vms?.length ?? 1), [1, 3]);
    // A value that is not a number of VMs is refused with the plan's line, before anything runs.
    writeFileSync(join(out, 'bad.pln'), readFileSync(join(out, 'ranks.pln'), 'utf8').replace('anyof 1 3', 'anyof 1 300'));
    const bad = await vmwu(['sweep', join(out, 'bad.pln'), '--base', 'tiny', '--name', `bad-${process.pid}`, '--nodes', 'n'], env);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /bad\.pln:2: parameter n gives job 2 "300" VMs/);
  });
});
