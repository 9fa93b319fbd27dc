import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ineligible, parseSelector, placeJob, placeVms, rankHosts, simulatePlacement, spreadRefusal, type HostFacts } from '../../../../src/executors/ssh/placement.js';

const host = (name: string, over: Partial<HostFacts> = {}): HostFacts => ({
  name, labels: {}, arch: 'x86_64', slots: 2, busy: 0, memMiB: 4096, up: true, heldBytes: 0, ...over,
});
const needs = { arch: 'x86_64', memoryMiB: 512, needBytes: 1000 };

test('placement filters on labels, names, architecture and memory, and says why', () => {
  const sel = parseSelector('zone=a,gpu=no');
  assert.deepEqual(sel, { labels: { zone: 'a', gpu: 'no' }, names: [] });
  assert.match(ineligible(host('x', { labels: { zone: 'b', gpu: 'no' } }), needs, sel)!, /zone=a wanted, host has zone=b/);
  assert.match(ineligible(host('x', { labels: { zone: 'a' } }), needs, sel)!, /host has no gpu/);
  assert.equal(ineligible(host('x', { labels: { zone: 'a', gpu: 'no' } }), needs, sel), null);
  assert.match(ineligible(host('x', { arch: 'aarch64' }), needs, parseSelector(''))!, /unit is x86_64, the host is aarch64/);
  assert.match(ineligible(host('x', { memMiB: 256 }), needs, parseSelector(''))!, /needs 512 MiB, the host has 256 MiB/);
  assert.match(ineligible(host('x'), needs, parseSelector('y,z'))!, /not among the hosts named/);
});

test('placement ranks a host holding the unit first, then free slots, and skips full or down hosts', () => {
  const sel = parseSelector(undefined);
  const hosts = [host('a', { slots: 4 }), host('b', { heldBytes: 1000, slots: 1 }), host('c', { slots: 3, busy: 0 })];
  assert.deepEqual(rankHosts(hosts, needs, sel).map((r) => r.host.name), ['b', 'a', 'c']);
  assert.equal(placeJob(hosts, needs, sel)!.name, 'b');
  hosts[1]!.busy = 1;
  assert.equal(placeJob(hosts, needs, sel)!.name, 'a', 'the holder is full: the one with most free slots');
  hosts[0]!.up = false;
  assert.equal(placeJob(hosts, needs, sel)!.name, 'c', 'a down host is skipped');
  hosts[2]!.busy = 3;
  assert.equal(placeJob(hosts, needs, sel), null);
  // Partly held counts too: less to send.
  assert.deepEqual(rankHosts([host('p'), host('q', { heldBytes: 400 })], needs, sel).map((r) => r.host.name), ['q', 'p']);
});

test('the dry-run simulation fills the host that received the unit before sending it to another', () => {
  const first = simulatePlacement([host('a'), host('b')], needs, parseSelector(''), 5);
  assert.deepEqual(first, [
    { job: 1, host: 'a', sends: true }, { job: 2, host: 'a', sends: false }, { job: 3, host: 'b', sends: true }, { job: 4, host: 'b', sends: false },
    { job: 5, host: null, sends: false },
  ]);
});

test('the VMs of a multi-VM job are placed all at once: apart on as many hosts, or packed where slots are free', () => {
  const sel = parseSelector(undefined);
  const hosts = [host('a', { slots: 2 }), host('b', { slots: 2, heldBytes: 1000 }), host('c', { slots: 1, up: false })];
  assert.deepEqual(placeVms(hosts, needs, sel, 2, true)!.map((h) => h.name), ['b', 'a']);
  assert.deepEqual(placeVms(hosts, needs, sel, 3, false)!.map((h) => h.name), ['b', 'b', 'a'], 'packed: the holder\'s two slots first');
  assert.equal(placeVms(hosts, needs, sel, 3, true), null, 'the third host is down: not now');
  hosts[1]!.busy = 2;
  assert.equal(placeVms(hosts, needs, sel, 2, true), null, 'one host full: two apart cannot be had now');
  assert.deepEqual(placeVms(hosts, needs, sel, 2, false)!.map((h) => h.name), ['a', 'a']);
  assert.equal(spreadRefusal(3, ['a', 'b', 'c']), undefined);
  assert.match(spreadRefusal(4, ['a', 'b'])!.message, /needs 4 hosts; the sweep can use 2 \(a, b\)/);
});
