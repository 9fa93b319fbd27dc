import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GuestNetwork } from '../../../guest/protocol.js';
import { guestDnsUpstream, isPlainQuery } from '../../../src/vm/guest-dns.js';
import { dnsAnswerFrame, FrameReader, framed, ipv4ToInt, judgeGuestFrame } from '../../../src/vm/guest-frames.js';

/** An Ethernet frame carrying IPv4 from the guest to `dst` (protocol `proto`, destination port `port`). */
function ipv4Frame(dst: string, proto = 6, port = 80, payload = Buffer.alloc(0)): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + payload.length);
  Buffer.from('52540000000a', 'hex').copy(f, 0);
  Buffer.from('525400123456', 'hex').copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + 8 + payload.length, 16);
  f[14 + 9] = proto;
  f.writeUInt32BE(ipv4ToInt(GuestNetwork.address), 14 + 12);
  f.writeUInt32BE(ipv4ToInt(dst), 14 + 16);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(port, 36);
  f.writeUInt16BE(8 + payload.length, 38);
  payload.copy(f, 42);
  return f;
}

const query = (() => {
  const q = Buffer.alloc(12 + 17 + 4);
  q.writeUInt16BE(0xbeef, 0);
  q.writeUInt16BE(0x0100, 2);
  q.writeUInt16BE(1, 4);
  Buffer.from('\x07example\x03org\x00', 'latin1').copy(q, 12);
  q.writeUInt16BE(1, 29);
  q.writeUInt16BE(1, 31);
  return q;
})();

test('the guest reaches the world, never this host: loopback, its own addresses, link-local, its virtual subnet', () => {
  const host = new Set([ipv4ToInt('192.0.2.2')]);
  for (const dst of ['93.184.216.34', '10.213.5.2', '8.8.8.8']) assert.deepEqual(judgeGuestFrame(ipv4Frame(dst), host), { pass: true }, dst);
  for (const dst of ['127.0.0.1', '127.0.0.53', '127.1.2.3', '0.0.0.0', '169.254.169.254', '192.0.2.2', '10.0.2.2', '10.0.2.200', '224.0.0.1', '255.255.255.255']) {
    assert.equal(judgeGuestFrame(ipv4Frame(dst), host).pass, false, dst);
    assert.equal(judgeGuestFrame(ipv4Frame(dst, 17, 53, query), host).pass, false, `${dst} (UDP 53)`);
  }
  const arp = Buffer.alloc(42);
  arp.writeUInt16BE(0x0806, 12);
  assert.equal(judgeGuestFrame(arp, host).pass, true, 'ARP finds the gateway');
  const v6 = Buffer.alloc(60);
  v6.writeUInt16BE(0x86dd, 12);
  assert.equal(judgeGuestFrame(v6, host).pass, false, 'IPv6 is not offered');
  assert.equal(judgeGuestFrame(Buffer.alloc(10), host).pass, false, 'a runt');
});

test('only DNS over UDP goes to the resolver address, and vmwu answers it', () => {
  const v = judgeGuestFrame(ipv4Frame(GuestNetwork.dns, 17, 53, query), new Set());
  assert.equal(v.pass, false);
  assert.ok(!v.pass && v.dns, 'a DNS query for vmwu to answer');
  assert.ok(!v.pass && v.dns!.payload.equals(query));
  assert.equal(judgeGuestFrame(ipv4Frame(GuestNetwork.dns, 6, 53), new Set()).pass, false, 'TCP to the resolver address goes nowhere');
  assert.ok(!(judgeGuestFrame(ipv4Frame(GuestNetwork.dns, 17, 5353, query), new Set()) as { dns?: unknown }).dns, 'another port is not DNS');
  const answer = Buffer.from(query);
  answer.writeUInt16BE(0x8180, 2);
  const f = dnsAnswerFrame((v as { dns: Parameters<typeof dnsAnswerFrame>[0] }).dns, answer);
  assert.equal(f.subarray(0, 6).toString('hex'), '525400123456', 'to the guest\'s MAC');
  assert.equal(f.readUInt32BE(14 + 12), ipv4ToInt(GuestNetwork.dns), 'from the resolver address');
  assert.equal(f.readUInt16BE(34), 53);
  assert.equal(f.readUInt16BE(36), 40000, 'to the port it asked from');
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += f.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  assert.equal(sum, 0xffff, 'the IPv4 header checksum holds');
  assert.ok(f.subarray(42).equals(answer));
});

test('only a plain query is relayed', () => {
  assert.ok(isPlainQuery(query));
  const answerLike = Buffer.from(query);
  answerLike.writeUInt16BE(0x8100, 2);
  assert.ok(!isPlainQuery(answerLike), 'a response');
  const update = Buffer.from(query);
  update.writeUInt16BE(5 << 11, 2);
  assert.ok(!isPlainQuery(update), 'an UPDATE');
  const two = Buffer.from(query);
  two.writeUInt16BE(2, 4);
  assert.ok(!isPlainQuery(two), 'two questions');
  assert.ok(!isPlainQuery(Buffer.alloc(5)), 'too short');
  assert.ok(!isPlainQuery(Buffer.concat([query, Buffer.alloc(2000)])), 'too long');
});

test('the guest\'s resolver is the host\'s, or $VMWU_GUEST_DNS', () => {
  assert.deepEqual(guestDnsUpstream({ VMWU_GUEST_DNS: '127.0.0.53' }), { address: '127.0.0.53', port: 53 });
  assert.deepEqual(guestDnsUpstream({ VMWU_GUEST_DNS: '127.0.0.1:5353' }), { address: '127.0.0.1', port: 5353 });
  assert.deepEqual(guestDnsUpstream({ VMWU_GUEST_DNS: '[::1]:5300' }), { address: '::1', port: 5300 });
  assert.equal(guestDnsUpstream({ VMWU_GUEST_DNS: 'resolver.example' }), undefined, 'an address, not a name');
});

test('frames cross whole, however the stream is cut; an oversized one ends it', () => {
  const a = Buffer.from('first frame');
  const b = Buffer.alloc(3000, 7);
  const stream = Buffer.concat([framed(a), framed(b)]);
  const r = new FrameReader();
  const got: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 7) got.push(...r.push(stream.subarray(i, i + 7)));
  assert.equal(got.length, 2);
  assert.ok(got[0]!.equals(a) && got[1]!.equals(b));
  const huge = Buffer.alloc(4);
  huge.writeUInt32BE(1 << 30);
  assert.throws(() => new FrameReader().push(huge));
});
