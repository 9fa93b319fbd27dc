import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeDirs } from '../../../src/run/node-dirs.js';
import {
  bootId, describeOwner, formatIdentity, identityState, mayBeActive, parseIdentity, processStartTime, selfIdentity,
} from '../../../src/store/process-identity.js';
import { classifyFs, filesystemOf } from '../../../src/store/fs-kind.js';
import { parseProcUsage } from '../../../src/vm/usage.js';
import { isVmwuError } from '../../../src/errors.js';

const here = { host: 'login1', boot: 'boot-a' };
const me = `${process.pid}:${processStartTime(process.pid)}`;

test('an identity carries its host and boot id; old ones without are read as this host\'s', () => {
  const i = parseIdentity('123:456@n7.cluster/0f3c-boot');
  assert.deepEqual(i, { pid: 123, start: '456', host: 'n7.cluster', boot: '0f3c-boot' });
  assert.equal(formatIdentity(i), '123:456@n7.cluster/0f3c-boot');
  assert.deepEqual(parseIdentity('99:1000'), { pid: 99, start: '1000', host: null, boot: null });
  assert.match(selfIdentity(), new RegExp(`^${process.pid}:\\d+@[^/]+/${bootId()}$`));
  assert.equal(describeOwner('7:1@n3/x'), 'process 7 on host n3');
});

test('only this host judges its own processes; another host\'s are foreign (this kernel) or elsewhere (another machine)', () => {
  assert.equal(identityState(`${me}@login1/boot-a`, here), 'alive');
  assert.equal(identityState(`${process.pid}:1@login1/boot-a`, here), 'dead', 'a recycled pid');
  assert.equal(identityState(me, here), 'alive', 'legacy: judged here');
  // The same pid and start on another host name: never ours to judge, whatever /proc says here.
  assert.equal(identityState(`${me}@n2/boot-a`, here), 'foreign');
  assert.equal(identityState(`1:1@n2/boot-a`, here), 'foreign');
  assert.equal(identityState(`${me}@n2/boot-b`, here), 'elsewhere');
  // This host before a reboot: its processes are gone.
  assert.equal(identityState(`${me}@login1/boot-old`, here), 'dead');
  assert.equal(mayBeActive(selfIdentity()), true);
  assert.equal(mayBeActive(`1:1@another-host/${bootId()}`), true, 'a namespace of this kernel shares the store lease: it may be running');
  assert.equal(mayBeActive(`1:1@another-host/other-boot`), false, 'another machine cannot hold the store while this process does');
});

test('network filesystems are told apart from local ones by statfs type', () => {
  for (const [type, name] of [[0x6969, 'nfs'], [0x65735546, 'fuse'], [0x0bd00bd0, 'lustre'], [0x47504653, 'gpfs'], [0x19830326, 'beegfs'],
    [0xff534d42, 'cifs'], [0xfe534d42, 'smb2'], [0x00c36400, 'ceph']] as const) {
    assert.deepEqual(classifyFs(type), { type, name, network: true });
  }
  assert.deepEqual(classifyFs(0xef53), { type: 0xef53, name: 'ext4', network: false });
  assert.equal(classifyFs(0x01021994).network, false, 'tmpfs');
  assert.equal(classifyFs(0xff534d42 | 0).network, true, 'a type handed back negative');
  assert.equal(filesystemOf('/', {}).network, false);
  assert.equal(filesystemOf('/', { VMWU_ASSUME_NETWORK_FS: '1' }).network, true);
});

test('node-local scratch: $VMWU_SCRATCH, then config scratch:, then $SLURM_TMPDIR (instances only), $TMPDIR, /tmp; never inside the store', () => {
  const uid = process.getuid!();
  assert.deepEqual(nodeDirs(undefined, '/home/u/vmwu', {}), { instances: `/tmp/vmwu-${uid}/instances`, cache: `/tmp/vmwu-${uid}/cache`, from: '/tmp' });
  const slurm = nodeDirs(undefined, '/home/u/vmwu', { SLURM_TMPDIR: '/local/job42', TMPDIR: '/local/tmp' });
  assert.equal(slurm.instances, `/local/job42/vmwu-${uid}/instances`);
  assert.equal(slurm.cache, `/local/tmp/vmwu-${uid}/cache`, 'the cache outlives the job: not in its SLURM_TMPDIR');
  assert.equal(nodeDirs('/scratch', '/home/u/vmwu', { TMPDIR: '/t' }).instances, `/scratch/vmwu-${uid}/instances`);
  assert.equal(nodeDirs('/scratch', '/home/u/vmwu', { VMWU_SCRATCH: '/fast' }).from, '$VMWU_SCRATCH');
  assert.throws(() => nodeDirs(undefined, '/shared/vmwu', { TMPDIR: '/shared/vmwu/tmp' }), (e: unknown) => isVmwuError(e) && e.code === 'BAD_SCRATCH' && /inside the store/.test(e.message));
});

test('QEMU\'s CPU time and peak memory from /proc', () => {
  const stat = '4242 (qemu-system-x86) S 1 4242 4242 0 -1 4194560 9000 0 0 0 250 37 0 0 20 0 3 0 1000 700000000 70000 18446744073709551615';
  const status = 'Name:\tqemu-system-x86\nVmPeak:\t  900000 kB\nVmHWM:\t  283124 kB\nVmRSS:\t  200000 kB\n';
  assert.deepEqual(parseProcUsage(stat, status), { cpuMs: 2870, maxRssKiB: 283124 });
  assert.equal(parseProcUsage(stat, 'Name: x\n'), undefined);
});
