import assert from 'node:assert/strict';
import { chmodSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { processesMentioning, startCli, testHome, tmp, until, vmwu } from '../support/harness.js';
import { nodeDirs } from '../../src/run/node-dirs.js';

/**
 * Multi-VM jobs on one host (`vmwu run --nodes N`): N VMs of the tiny base on a
 * private segment of their own; the command on node0 sees every VM by name and
 * address, reaches them, and reaches nothing else; one VM killed fails the whole
 * job with that VM named, and nothing is left running.
 */

interface VmJson { index: number; host: string; runId: string; status: string; error?: string }
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
  test('three VMs: node0 has the hosts and hostfile, reaches node1 and node2 on the segment, and has no route out', async () => {
    const before = segmentsLeft();
    const r = await vmwu(['run', '--json', '--nodes', '3', '--memory', '128M', '--base', 'tiny', '--', 'sh', '-c', [
      'hostname', 'grep node /etc/hosts', 'cat "$VMWU_HOSTFILE"',
      'ping -c 1 -W 2 node1 >/dev/null && echo node1 answers', 'ping -c 1 -W 2 10.213.0.3 >/dev/null && echo node2 answers',
      `for a in 10.0.2.2 ${hostAddress()}; do ping -c 1 -W 2 $a >/dev/null 2>&1 && echo reached $a; done; echo no way out`,
    ].join('; ')], env);
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout) as RunJson;
    assert.equal(res.status, 'succeeded');
    assert.deepEqual(res.vms.map((v) => v.host), ['node0', 'node1', 'node2']);
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
      return list.find((x) => ours(x) && x.status === 'running' && x.argv.join(' ').includes('sleep 3600') && x.qemuPid)?.qemuPid ?? undefined;
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
    assert.match(res.error?.message ?? '', /VM 1 \(node1\) of the job ended before VM 0/);
    assert.notEqual(r.code, 0);
    for (const v of res.vms) assert.equal(processesMentioning(v.runId).length, 0, `no QEMU of ${v.host} left`);
    assert.deepEqual(segmentsLeft(), before);
  });
});
