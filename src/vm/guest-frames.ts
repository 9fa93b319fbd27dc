import { GuestNetwork } from '../../guest/protocol.js';

/**
 * What a networked guest may send, frame by frame (docs/security.md, "The guest
 * network"). passt connects whatever the guest addresses from the host's own
 * sockets, the host's loopback included: a guest that routes 127.0.0.0/8 out of
 * its NIC reached every service listening there. So vmwu stands between QEMU
 * and passt and lets through only ARP and IPv4 to addresses outside the host:
 * nothing to loopback, this host's own addresses, link-local (cloud metadata
 * services live there), the guest's virtual subnet, multicast or broadcast.
 * DNS to the guest's resolver address is answered by vmwu itself
 * (src/vm/guest-dns.ts). Pure.
 */

export const ETH_HEADER = 14;
const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_ARP = 0x0806;
const PROTO_UDP = 17;
const DNS_PORT = 53;

/** IPv4 ranges no guest packet may go to: [network, prefix length]. */
const BLOCKED: [string, number][] = [
  ['0.0.0.0', 8], ['127.0.0.0', 8], ['169.254.0.0', 16], ['224.0.0.0', 4], ['240.0.0.0', 4],
  // The guest's own virtual subnet: the gateway and resolver addresses are passt's fiction, not hosts.
  [`${GuestNetwork.gateway.split('.').slice(0, 3).join('.')}.0`, GuestNetwork.prefixLength],
];

export function ipv4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => (n << 8) + Number(o), 0) >>> 0;
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const blockedRanges = BLOCKED.map(([net, len]) => {
  const mask = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  return { net: ipv4ToInt(net) & mask, mask };
});

/** A UDP datagram to the guest's resolver: vmwu answers it. */
export interface DnsQuery {
  /** The guest's MAC and the MAC it sent to (passt's), to address the answer. */
  guestMac: Buffer;
  routerMac: Buffer;
  guestIp: number;
  guestPort: number;
  payload: Buffer;
}

export type FrameVerdict = { pass: true } | { pass: false; why: string; dns?: DnsQuery };

/**
 * The verdict on one Ethernet frame from the guest. `hostAddresses` are this
 * host's own IPv4 addresses (as integers): a guest must not reach its services
 * by them either.
 */
export function judgeGuestFrame(frame: Buffer, hostAddresses: ReadonlySet<number>): FrameVerdict {
  if (frame.length < ETH_HEADER) return { pass: false, why: 'runt frame' };
  const type = frame.readUInt16BE(12);
  if (type === ETHERTYPE_ARP) return { pass: true };
  if (type !== ETHERTYPE_IPV4) return { pass: false, why: `ethertype 0x${type.toString(16)}` };
  const ip = ETH_HEADER;
  if (frame.length < ip + 20) return { pass: false, why: 'short IPv4 header' };
  const ihl = (frame[ip]! & 0x0f) * 4;
  if (frame[ip]! >> 4 !== 4 || ihl < 20 || frame.length < ip + ihl) return { pass: false, why: 'bad IPv4 header' };
  const proto = frame[ip + 9]!;
  const src = frame.readUInt32BE(ip + 12);
  const dst = frame.readUInt32BE(ip + 16);
  if (dst === ipv4ToInt(GuestNetwork.dns)) {
    const fragment = frame.readUInt16BE(ip + 6) & 0x3fff;
    const udp = ip + ihl;
    if (proto === PROTO_UDP && !fragment && frame.length >= udp + 8 && frame.readUInt16BE(udp + 2) === DNS_PORT) {
      const end = Math.min(frame.length, udp + frame.readUInt16BE(udp + 4));
      return {
        pass: false, why: 'DNS, answered by vmwu',
        dns: { guestMac: Buffer.from(frame.subarray(6, 12)), routerMac: Buffer.from(frame.subarray(0, 6)), guestIp: src, guestPort: frame.readUInt16BE(udp), payload: Buffer.from(frame.subarray(udp + 8, end)) },
      };
    }
    return { pass: false, why: 'the resolver address takes only DNS over UDP' };
  }
  if (hostAddresses.has(dst)) return { pass: false, why: `${intToIpv4(dst)} is this host` };
  if (dst === 0xffffffff || blockedRanges.some((r) => (dst & r.mask) === r.net)) return { pass: false, why: `${intToIpv4(dst)} is not out there` };
  return { pass: true };
}

/** The standard internet checksum (RFC 1071) of a header. */
function checksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The Ethernet frame that carries a DNS answer from the resolver address back to the guest. */
export function dnsAnswerFrame(q: DnsQuery, answer: Buffer): Buffer {
  const f = Buffer.alloc(ETH_HEADER + 20 + 8 + answer.length);
  q.guestMac.copy(f, 0);
  q.routerMac.copy(f, 6);
  f.writeUInt16BE(ETHERTYPE_IPV4, 12);
  const ip = ETH_HEADER;
  f[ip] = 0x45;
  f.writeUInt16BE(20 + 8 + answer.length, ip + 2);
  f.writeUInt16BE(0x4000, ip + 6); // don't fragment
  f[ip + 8] = 64;
  f[ip + 9] = PROTO_UDP;
  f.writeUInt32BE(ipv4ToInt(GuestNetwork.dns), ip + 12);
  f.writeUInt32BE(q.guestIp, ip + 16);
  f.writeUInt16BE(checksum(f.subarray(ip, ip + 20)), ip + 10);
  const udp = ip + 20;
  f.writeUInt16BE(DNS_PORT, udp);
  f.writeUInt16BE(q.guestPort, udp + 2);
  f.writeUInt16BE(8 + answer.length, udp + 4);
  // UDP checksum 0: none, which IPv4 allows.
  answer.copy(f, udp + 8);
  return f;
}

/**
 * Splits QEMU's stream netdev protocol (each frame after its 4-byte big-endian
 * length, the framing passt speaks too) into frames. Frames longer than
 * `maxFrame` end the stream: no guest gets to make vmwu buffer without bound.
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly maxFrame = 65_536 + ETH_HEADER) {}

  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const frames: Buffer[] = [];
    let at = 0;
    while (this.buf.length - at >= 4) {
      const len = this.buf.readUInt32BE(at);
      if (len > this.maxFrame) throw new Error(`a frame of ${len} bytes`);
      if (this.buf.length - at - 4 < len) break;
      frames.push(this.buf.subarray(at + 4, at + 4 + len));
      at += 4 + len;
    }
    this.buf = this.buf.subarray(at);
    return frames;
  }
}

export function framed(frame: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(frame.length);
  return Buffer.concat([head, frame]);
}
