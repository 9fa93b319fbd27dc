import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { frameTargets, segmentAddress, segmentHostfile, segmentHosts, segmentMac } from '../../../src/vm/job-segment.js';
import { framed, FrameReader } from '../../../src/vm/guest-frames.js';
import { startSegmentHub } from '../../../src/vm/segment-hub.js';

const mac = (m: string) => Buffer.from(m.split(':').map((x) => parseInt(x, 16)));
const frame = (to: string, from: string, payload = 'x') => Buffer.concat([mac(to), mac(from), Buffer.from([0x08, 0x00]), Buffer.from(payload)]);
const BROADCAST = 'ff:ff:ff:ff:ff:ff';

test('addresses, names, hosts and hostfile of a segment', () => {
  assert.equal(segmentAddress(0), '10.213.0.1');
  assert.equal(segmentMac(10), '52:54:00:d5:00:0a');
  assert.equal(segmentHosts(2), '10.213.0.1 node0\n10.213.0.2 node1\n');
  assert.equal(segmentHostfile(3, 2), 'node0\nnode0\nnode1\nnode1\nnode2\nnode2\n');
});

test('a frame goes to the VM its MAC names, broadcast to the others; a spoofed source or a stranger\'s MAC goes nowhere', () => {
  assert.deepEqual(frameTargets(frame(segmentMac(2), segmentMac(0)), 0, 4), [2]);
  assert.deepEqual(frameTargets(frame(BROADCAST, segmentMac(1)), 1, 4), [0, 2, 3]);
  assert.deepEqual(frameTargets(frame('33:33:00:00:00:01', segmentMac(3)), 3, 4), [0, 1, 2], 'multicast');
  assert.deepEqual(frameTargets(frame(segmentMac(2), segmentMac(1)), 0, 4), [], 'VM 0 posing as VM 1');
  assert.deepEqual(frameTargets(frame('52:54:00:12:34:56', segmentMac(0)), 0, 4), [], 'no such VM');
  assert.deepEqual(frameTargets(frame(segmentMac(0), segmentMac(0)), 0, 4), [], 'not back to itself');
  assert.deepEqual(frameTargets(Buffer.alloc(10), 0, 4), [], 'runt');
});

const dir = mkdtempSync(join(tmpdir(), 'vmwu-hub-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function join2(path: string): Promise<{ s: Socket; frames: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    const frames: Buffer[] = [];
    const reader = new FrameReader();
    s.on('data', (c: Buffer) => frames.push(...reader.push(c)));
    s.once('connect', () => resolve({ s, frames }));
    s.once('error', reject);
  });
}

const settle = () => new Promise((r) => setTimeout(r, 100));

test('the hub carries frames between the job\'s VMs only; each socket takes one VM and is gone', async () => {
  // Its private directory, as src/run/segment-dir.ts makes it.
  mkdirSync(join(dir, 'seg'), { mode: 0o700 });
  const hub = await startSegmentHub(join(dir, 'seg'), 3);
  const vms = await Promise.all(hub.sockets.map(join2));
  for (const p of hub.sockets) assert.equal(existsSync(p), false, 'the socket went with its VM');
  vms[0]!.s.write(framed(frame(BROADCAST, segmentMac(0), 'hello all')));
  vms[1]!.s.write(framed(frame(segmentMac(2), segmentMac(1), 'to two')));
  vms[2]!.s.write(framed(frame(segmentMac(0), segmentMac(1), 'forged')));
  await settle();
  assert.deepEqual(vms[0]!.frames.map((f) => f.subarray(14).toString()), []);
  assert.deepEqual(vms[1]!.frames.map((f) => f.subarray(14).toString()), ['hello all']);
  assert.deepEqual(vms[2]!.frames.map((f) => f.subarray(14).toString()), ['hello all', 'to two']);
  assert.equal(hub.dropped(), 1);
  // A frame split across writes arrives whole.
  const f = framed(frame(segmentMac(0), segmentMac(2), 'split'));
  vms[2]!.s.write(f.subarray(0, 7));
  await settle();
  vms[2]!.s.write(f.subarray(7));
  await settle();
  assert.deepEqual(vms[0]!.frames.map((x) => x.subarray(14).toString()), ['split']);
  hub.close();
  assert.equal(existsSync(join(dir, 'seg')), false);
  for (const v of vms) v.s.destroy();
});
