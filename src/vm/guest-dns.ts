import { createSocket, type Socket } from 'node:dgram';
import { getServers } from 'node:dns';
import { isIP } from 'node:net';
import { dnsAnswerFrame, type DnsQuery } from './guest-frames.js';

/**
 * The guest's resolver (docs/security.md, "The guest network"): DNS queries the
 * guest sends to its resolver address reach the host's resolver from a socket
 * of vmwu's, one query at a time as vmwu reads it, and only a well-formed query
 * goes: no other packet from the guest reaches the host's loopback, where the
 * resolver often listens (127.0.0.53). Answers go back only to queries asked,
 * under the guest's own id.
 */

const HEADER = 12;
/** A query is a name and a few records; EDNS's common buffer size is plenty. */
const MAX_QUERY = 1232;
/** What the resolver may answer with over UDP: anything larger is refused whole. */
const MAX_ANSWER = 4096;
const MAX_PENDING = 64;
const ANSWER_WAIT_MS = 5000;

/** A standard query with one question and no answers: the only thing relayed. Pure. */
export function isPlainQuery(q: Buffer): boolean {
  if (q.length < HEADER || q.length > MAX_QUERY) return false;
  const flags = q.readUInt16BE(2);
  const qr = flags >> 15;
  const opcode = (flags >> 11) & 0xf;
  return qr === 0 && opcode === 0 && q.readUInt16BE(4) === 1 && q.readUInt16BE(6) === 0 && q.readUInt16BE(8) === 0 && q.readUInt16BE(10) <= 1;
}

export interface Upstream {
  address: string;
  port: number;
}

/** `$VMWU_GUEST_DNS` (ADDRESS or ADDRESS:PORT), else the host's first resolver (/etc/resolv.conf). */
export function guestDnsUpstream(env: NodeJS.ProcessEnv = process.env): Upstream | undefined {
  const given = env.VMWU_GUEST_DNS;
  const text = given || getServers()[0];
  if (!text) return undefined;
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text) ?? [text, text, undefined];
  const address = m[1]!;
  if (!isIP(address)) return undefined;
  return { address, port: m[2] ? Number(m[2]) : 53 };
}

export class GuestDnsRelay {
  private socket: Socket | undefined;
  private nextId = Math.floor(Math.random() * 0x10000);
  private readonly pending = new Map<number, { q: DnsQuery; guestId: number; timer: NodeJS.Timeout }>();

  constructor(private readonly answer: (frame: Buffer) => void, private readonly upstream = guestDnsUpstream()) {}

  ask(q: DnsQuery): void {
    if (!this.upstream || !isPlainQuery(q.payload) || this.pending.size >= MAX_PENDING) return;
    const socket = this.open();
    let id = this.nextId;
    while (this.pending.has(id)) id = (id + 1) & 0xffff;
    this.nextId = (id + 1) & 0xffff;
    const out = Buffer.from(q.payload);
    const guestId = out.readUInt16BE(0);
    out.writeUInt16BE(id, 0);
    const timer = setTimeout(() => this.pending.delete(id), ANSWER_WAIT_MS);
    timer.unref();
    this.pending.set(id, { q, guestId, timer });
    socket.send(out, this.upstream.port, this.upstream.address);
  }

  private open(): Socket {
    if (this.socket) return this.socket;
    const s = createSocket(isIP(this.upstream!.address) === 6 ? 'udp6' : 'udp4');
    s.on('error', () => undefined);
    s.on('message', (msg, from) => {
      if (from.address !== this.upstream!.address || from.port !== this.upstream!.port || msg.length < HEADER || msg.length > MAX_ANSWER) return;
      if (!(msg.readUInt16BE(2) >> 15)) return;
      const p = this.pending.get(msg.readUInt16BE(0));
      if (!p) return;
      this.pending.delete(msg.readUInt16BE(0));
      clearTimeout(p.timer);
      const back = Buffer.from(msg);
      back.writeUInt16BE(p.guestId, 0);
      this.answer(dnsAnswerFrame(p.q, back));
    });
    s.unref();
    this.socket = s;
    return s;
  }

  close(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.socket?.close();
    this.socket = undefined;
  }
}
