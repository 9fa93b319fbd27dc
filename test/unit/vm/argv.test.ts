import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildQemuArgv, qemuEscape } from '../../../src/vm/argv.js';
import { passtArgv } from '../../../src/vm/network.js';
import { dropArgs, passwdEntry } from '../../../src/vm/qemu-user.js';
import type { VmSpec } from '../../../src/vm/spec.js';

const spec: VmSpec = {
  name: 'abc', accel: 'tcg', memoryMiB: 256, cpus: 2,
  boot: { kind: 'kernel', kernel: '/b/k', initrd: '/b/i', cmdline: 'console=ttyS0 quiet' },
  disks: [
    { id: 'root', path: '/r/root.qcow2', format: 'qcow2', serial: 'vmwu-root' },
    { id: 'in', path: '/r/in,put.img', format: 'raw', serial: 'vmwu-in', readOnly: true },
  ],
  qmpSocket: '/r/qmp.sock', consoleSocket: '/r/con.sock',
  ports: [{ name: 'vmwu.ctl', socket: '/r/ctl.sock' }],
  pidfile: '/r/qemu.pid', network: false, tscKhz: 2596130,
};

function valueAfter(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));
}

test('kernel bases boot microvm with the TSC hint under TCG and no NIC', () => {
  const a = buildQemuArgv(spec);
  assert.deepEqual(valueAfter(a, '-machine'), ['microvm,memory-backend=ram']);
  assert.deepEqual(valueAfter(a, '-object'), ['memory-backend-ram,id=ram,size=256M'], 'RAM is a named backend, so any saved state of this shape loads');
  assert.ok(!a.includes('-incoming'));
  assert.deepEqual(valueAfter(a, '-accel'), ['tcg']);
  assert.equal(valueAfter(a, '-append')[0], 'console=ttyS0 quiet tsc_early_khz=2596130');
  assert.ok(a.includes('-no-reboot') && a.includes('-nodefaults'));
  assert.ok(!a.includes('-netdev'), 'no network unless asked');
  assert.ok(!a.includes('-cpu'), 'TCG keeps the default CPU model');
  assert.deepEqual(valueAfter(a, '-m'), ['256M']);
  assert.deepEqual(valueAfter(a, '-smp'), ['2']);
  assert.deepEqual(valueAfter(a, '-pidfile'), ['/r/qemu.pid']);
});

test('disks are addressed by serial, read-only ones marked, commas in paths doubled', () => {
  const a = buildQemuArgv(spec);
  assert.deepEqual(valueAfter(a, '-drive'), [
    'id=root,file=/r/root.qcow2,format=qcow2,if=none,cache=unsafe',
    'id=in,file=/r/in,,put.img,format=raw,if=none,readonly=on',
  ]);
  assert.deepEqual(valueAfter(a, '-device').filter((d) => d.startsWith('virtio-blk')), [
    'virtio-blk-device,drive=root,serial=vmwu-root',
    'virtio-blk-device,drive=in,serial=vmwu-in',
  ]);
});

test('QMP, console and ports are client chardevs to vmwu-owned sockets', () => {
  const a = buildQemuArgv(spec);
  assert.deepEqual(valueAfter(a, '-chardev'), [
    'socket,id=qmp,path=/r/qmp.sock', 'socket,id=con,path=/r/con.sock', 'socket,id=port0,path=/r/ctl.sock',
  ]);
  assert.deepEqual(valueAfter(a, '-mon'), ['chardev=qmp,mode=control']);
  assert.deepEqual(valueAfter(a, '-serial'), ['chardev:con']);
  assert.ok(valueAfter(a, '-device').includes('virtserialport,chardev=port0,name=vmwu.ctl'));
});

test('KVM gets the host CPU and no TSC hint; network is a stream to passt beside the other sockets, never QEMU\'s own NAT', () => {
  const a = buildQemuArgv({ ...spec, accel: 'kvm', network: true });
  assert.deepEqual(valueAfter(a, '-cpu'), ['host']);
  assert.equal(valueAfter(a, '-append')[0], 'console=ttyS0 quiet');
  assert.deepEqual(valueAfter(a, '-netdev'), ['stream,id=net0,server=off,addr.type=unix,addr.path=/r/net.sock']);
  assert.ok(valueAfter(a, '-device').includes('virtio-net-device,netdev=net0'));
  assert.deepEqual(valueAfter(buildQemuArgv(spec), '-netdev'), [], 'no network unless asked for');
});

test('a VM of a multi-VM job has its segment NIC, by its MAC, on its own hub socket, beside an outbound network', () => {
  const a = buildQemuArgv({ ...spec, network: true, segment: { socket: '/h/vm-1.sock', mac: '52:54:00:d5:00:01' } });
  assert.deepEqual(valueAfter(a, '-netdev'), [
    'stream,id=net0,server=off,addr.type=unix,addr.path=/r/net.sock', 'stream,id=seg0,server=off,addr.type=unix,addr.path=/h/vm-1.sock',
  ]);
  assert.ok(valueAfter(a, '-device').includes('virtio-net-device,netdev=seg0,mac=52:54:00:d5:00:01'));
});

test('a disk from another host is opened by an explicit graph: QEMU follows no name in its header', () => {
  const a = buildQemuArgv({
    ...spec, disks: [
      { id: 'root', path: '/i/root.qcow2', format: 'qcow2', serial: 'vmwu-root', backing: { path: '/i/parent.qcow2', format: 'qcow2', backing: { path: '/c/aa', format: 'qcow2' } } },
      { id: 'data0', path: '/i/data0.qcow2', format: 'qcow2', serial: 'vmwu-data0', readOnly: true, backing: { path: '/c/bb', format: 'raw' } },
      { id: 'in', path: '/i/input.img', format: 'raw', serial: 'vmwu-in', readOnly: true },
    ],
  });
  const nodes = valueAfter(a, '-blockdev').map((j) => JSON.parse(j) as Record<string, unknown>);
  assert.deepEqual(nodes, [
    { driver: 'qcow2', 'node-name': 'root-b1', file: { driver: 'file', filename: '/c/aa' }, 'read-only': true },
    { driver: 'qcow2', 'node-name': 'root-b0', file: { driver: 'file', filename: '/i/parent.qcow2' }, 'read-only': true, backing: 'root-b1' },
    { driver: 'qcow2', 'node-name': 'root', file: { driver: 'file', filename: '/i/root.qcow2' }, backing: 'root-b0', cache: { 'no-flush': true } },
    { driver: 'raw', 'node-name': 'data0-b0', file: { driver: 'file', filename: '/c/bb' }, 'read-only': true },
    { driver: 'qcow2', 'node-name': 'data0', file: { driver: 'file', filename: '/i/data0.qcow2' }, backing: 'data0-b0', 'read-only': true },
  ], 'bottom first; only the store blob at the bottom keeps its own chain');
  assert.deepEqual(valueAfter(a, '-drive'), ['id=in,file=/i/input.img,format=raw,if=none,readonly=on'], 'a raw disk names nothing');
  assert.deepEqual(valueAfter(a, '-device').filter((d) => d.startsWith('virtio-blk')).map((d) => /drive=(\w+)/.exec(d)![1]), ['root', 'data0', 'in']);
});

test('every QEMU runs in its seccomp sandbox', () => {
  for (const s of [spec, { ...spec, network: true }, { ...spec, boot: { kind: 'bios' as const } }]) {
    assert.deepEqual(valueAfter(buildQemuArgv(s), '-sandbox'), ['on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']);
  }
});

test('passt: outbound only, gateway not mapped to the host, no DNS of its own (vmwu answers it), nothing forwarded in', () => {
  const a = passtArgv('/r/net.sock');
  assert.ok(a.includes('--no-map-gw'), 'the gateway address does not lead to the host\'s loopback');
  assert.deepEqual(valueAfter(a, '--socket'), ['/r/net.sock']);
  assert.deepEqual(valueAfter(a, '--tcp-ports'), ['none']);
  assert.deepEqual(valueAfter(a, '--udp-ports'), ['none']);
  assert.deepEqual(valueAfter(a, '--dns-forward'), [], 'passt maps no address to the host\'s resolver');
  assert.deepEqual(valueAfter(a, '--dns'), ['none'], 'nor tells the guest of one');
  assert.deepEqual(valueAfter(a, '--address'), ['10.0.2.15']);
  assert.ok(a.includes('--one-off'), 'it ends with its VM');
});

test('dropping root for QEMU: setpriv options and /etc/passwd lookup', () => {
  assert.deepEqual(dropArgs({ name: 'vmwu-qemu', uid: 990, gid: 985, groups: [] }),
    ['--reuid=990', '--regid=985', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs']);
  assert.ok(dropArgs({ name: 'q', uid: 1, gid: 2, groups: [108] }).includes('--groups=108'), 'the kvm group is kept for KVM');
  const passwd = 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\nbroken:x:y\n';
  assert.deepEqual(passwdEntry(passwd, 'nobody'), { uid: 65534, gid: 65534 });
  assert.equal(passwdEntry(passwd, 'broken'), undefined);
  assert.equal(passwdEntry(passwd, 'vmwu-qemu'), undefined);
});

test('firmware boot uses q35 and PCI devices; absent sockets are not wired', () => {
  const a = buildQemuArgv({ ...spec, boot: { kind: 'bios' }, qmpSocket: undefined, consoleSocket: undefined, pidfile: undefined, ports: [] });
  assert.deepEqual(valueAfter(a, '-machine'), ['q35,memory-backend=ram']);
  assert.ok(!a.includes('-kernel') && !a.includes('-chardev') && !a.includes('-pidfile'));
  assert.ok(valueAfter(a, '-device').every((d) => d.startsWith('virtio-blk-pci')));
});

test('qemuEscape doubles commas only', () => {
  assert.equal(qemuEscape('a,b,,c'), 'a,,b,,,,c');
  assert.equal(qemuEscape('/plain/path'), '/plain/path');
});

test('a template maps its RAM file shared; a clone maps it privately and waits for the saved state', () => {
  const t = buildQemuArgv({ ...spec, memoryFile: { path: '/t/a,b/memory', shared: true } });
  assert.deepEqual(valueAfter(t, '-object'), ['memory-backend-file,id=ram,size=256M,mem-path=/t/a,,b/memory,share=on']);
  assert.ok(!t.includes('-incoming'));
  const c = buildQemuArgv({ ...spec, memoryFile: { path: '/t/memory', shared: false }, incoming: { state: '/t/state' } });
  assert.deepEqual(valueAfter(c, '-object'), ['memory-backend-file,id=ram,size=256M,mem-path=/t/memory,share=off']);
  assert.deepEqual(valueAfter(c, '-incoming'), ['defer']);
});
