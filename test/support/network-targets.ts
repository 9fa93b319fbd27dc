import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { createSocket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { spawn } from 'node:child_process';
import { destroyNetns, listening, SBIN_PATH, sh } from './netns.js';
import { until } from './harness.js';

/**
 * What a guest with a network is checked against: an "outbound" web server on a
 * throw-away host (a network namespace of this machine, reached through a veth
 * pair and the host's routing, as any other machine would be), and a server on
 * the host's own 127.0.0.1 that a guest must never reach. Each answers with a
 * token of its own, so a test can tell exactly which one it got. Needs root.
 */
export interface NetworkTargets {
  outboundUrl: string;
  outboundToken: string;
  loopbackPort: number;
  loopbackToken: string;
  /** The host's own address on the link to the outbound host. */
  hostAddress: string;
  /** Another service on the host's loopback, away from 127.0.0.1 (where a resolver often listens: 127.0.0.53). */
  decoy: { address: string; port: number };
  /** Connections any of the host's loopback services above took: a guest must cause none. */
  loopbackHits(): number;
  stop(): Promise<void>;
}

/** A resolver on the host's loopback that answers every `*.vmwu.test` name with RESOLVED_TO, and remembers what it was asked. */
export interface FakeResolver {
  address: string;
  asked: string[];
  stop(): Promise<void>;
}

export const RESOLVED_TO = '192.0.2.77';

export async function startFakeResolver(address = '127.77.0.53'): Promise<FakeResolver> {
  const socket = createSocket('udp4');
  const asked: string[] = [];
  socket.on('message', (q, from) => {
    // The question's name: length-prefixed labels from byte 12.
    const labels: string[] = [];
    let at = 12;
    while (at < q.length && q[at]! > 0) {
      labels.push(q.subarray(at + 1, at + 1 + q[at]!).toString('latin1'));
      at += 1 + q[at]!;
    }
    const name = labels.join('.');
    asked.push(name);
    const question = q.subarray(12, at + 5);
    const isA = q.readUInt16BE(at + 1) === 1;
    const head = Buffer.alloc(12);
    q.copy(head, 0, 0, 2);
    head.writeUInt16BE(0x8180, 2);
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(isA && name.endsWith('.vmwu.test') ? 1 : 0, 6);
    const answer = Buffer.alloc(16);
    answer.writeUInt16BE(0xc00c, 0);
    answer.writeUInt16BE(1, 2);
    answer.writeUInt16BE(1, 4);
    answer.writeUInt32BE(60, 6);
    answer.writeUInt16BE(4, 10);
    RESOLVED_TO.split('.').forEach((o, i) => { answer[12 + i] = Number(o); });
    socket.send(Buffer.concat([head, question, ...(isA && name.endsWith('.vmwu.test') ? [answer] : [])]), from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(53, address, resolve));
  return { address, asked, stop: () => new Promise<void>((resolve) => socket.close(() => resolve())) };
}

export async function startNetworkTargets(): Promise<NetworkTargets> {
  const n = 10 + (process.pid % 200);
  const ns = `vmwu-nt${process.pid}`;
  const [hostIf, nsIf] = [`vnt${process.pid % 100000}a`, `vnt${process.pid % 100000}b`];
  const hostAddress = `10.213.${n}.1`;
  const outboundAddress = `10.213.${n}.2`;
  const outboundToken = `outbound-${randomBytes(6).toString('hex')}`;
  const loopbackToken = `loopback-${randomBytes(6).toString('hex')}`;

  sh('ip', ['netns', 'add', ns]);
  sh('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
  sh('ip', ['link', 'set', nsIf, 'netns', ns]);
  sh('ip', ['addr', 'add', `${hostAddress}/24`, 'dev', hostIf]);
  sh('ip', ['link', 'set', hostIf, 'up']);
  sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${outboundAddress}/24`, 'dev', nsIf]);
  sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up']);
  sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  const port = 8080;
  const server = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e',
    // /bulk/N answers N zero bytes: what a throughput measurement downloads.
    `require('http').createServer((q, r) => { const m = /^\\/bulk\\/(\\d+)$/.exec(q.url); if (!m) return r.end(${JSON.stringify(outboundToken)} + '\\n');`
    + ` let left = Number(m[1]); const chunk = Buffer.alloc(65536); r.setHeader('content-length', left);`
    + ` const more = () => { while (left > 0) { const n = Math.min(left, chunk.length); left -= n; if (!r.write(chunk.subarray(0, n))) return r.once('drain', more); } r.end(); }; more(); })`
    + `.listen(${port}, ${JSON.stringify(outboundAddress)})`],
  { stdio: 'ignore', env: { ...process.env, PATH: SBIN_PATH } });
  await until(() => listening(outboundAddress, port));

  let hits = 0;
  const loopback: Server = createServer((_q, r) => r.end(`${loopbackToken}\n`)).on('connection', () => hits++);
  await new Promise<void>((resolve) => loopback.listen(0, '127.0.0.1', resolve));
  const loopbackPort = (loopback.address() as { port: number }).port;
  const decoy: Server = createServer((_q, r) => r.end(`${loopbackToken}\n`)).on('connection', () => hits++);
  const decoyAddress = '127.77.0.54';
  await new Promise<void>((resolve) => decoy.listen(8053, decoyAddress, resolve));
  return {
    outboundUrl: `http://${outboundAddress}:${port}/`, outboundToken, loopbackPort, loopbackToken, hostAddress,
    decoy: { address: decoyAddress, port: 8053 }, loopbackHits: () => hits,
    async stop() {
      server.kill('SIGKILL');
      await new Promise<void>((resolve) => loopback.close(() => resolve()));
      await new Promise<void>((resolve) => decoy.close(() => resolve()));
      destroyNetns(ns);
      try {
        sh('ip', ['link', 'del', hostIf]);
      } catch {
        // went with the namespace
      }
    },
  };
}

/**
 * A guest script that reports what it can reach, one `name=exitcode` line each
 * (busybox wget, present on every base), and prints what it fetched. Last, it
 * routes 127.0.0.0/8 out of its NIC, as a hostile guest would, and tries the
 * host's loopback directly.
 */
export function reachScript(t: NetworkTargets, o: { lookup?: string } = {}): string {
  // A refused address may swallow packets rather than refuse them: don't wait for TCP to give up.
  const get = (name: string, url: string) => `busybox timeout 10 busybox wget -q -O - ${url}; echo ${name}=$?`;
  return [
    'busybox ip addr; busybox ip route; cat /etc/resolv.conf',
    get('outbound', t.outboundUrl),
    get('gateway', `http://10.0.2.2:${t.loopbackPort}/`),
    get('hostaddr', `http://${t.hostAddress}:${t.loopbackPort}/`),
    `busybox nslookup ${o.lookup ?? 'deb.debian.org'}; echo dns=$?`,
    'busybox ip route del local 127.0.0.0/8 dev lo table local; busybox ip route del local 127.0.0.1 dev lo table local',
    'busybox ip route add 127.0.0.0/8 via 10.0.2.2 dev eth0; for f in /proc/sys/net/ipv4/conf/*/route_localnet; do echo 1 > $f; done',
    'busybox ip route get 127.0.0.53',
    get('loopback', `http://127.0.0.1:${t.loopbackPort}/`),
    get('decoy', `http://${t.decoy.address}:${t.decoy.port}/`),
    `busybox timeout 10 busybox nslookup direct.vmwu.test ${t.decoy.address.replace(/\d+$/, '53')}; echo directdns=$?`,
  ].join('\n');
}

/** What every networked guest must show: see reachScript. */
export function assertReach(out: string, t: NetworkTargets): void {
  assert.match(out, /inet 10\.0\.2\.15\/24/, 'the interface has its address');
  assert.match(out, /default via 10\.0\.2\.2/, 'and a default route');
  assert.match(out, /^nameserver 10\.0\.2\.3$/m, 'and a resolver the guest can use');
  assert.ok(out.includes(t.outboundToken), `the outbound host answered:\n${out}`);
  assert.match(out, /^outbound=0$/m);
  assert.ok(!out.includes(t.loopbackToken), `nothing came from the host's 127.0.0.1:\n${out}`);
  assert.match(out, /^gateway=[1-9]\d*$/m, 'the gateway address does not lead to the host\'s loopback');
  assert.match(out, /^hostaddr=[1-9]\d*$/m, 'nor does the host\'s own address');
  assert.match(out, /via 10\.0\.2\.2 dev eth0/, `the guest did route the host's loopback out of its NIC:\n${out}`);
  assert.match(out, /^loopback=[1-9]\d*$/m, 'nor does routing 127.0.0.0/8 out of the NIC');
  assert.match(out, /^decoy=[1-9]\d*$/m, 'to any loopback address');
  assert.match(out, /^directdns=[1-9]\d*$/m, 'nor DNS to a resolver there');
  assert.equal(t.loopbackHits(), 0, 'no service on the host\'s loopback saw a connection');
}

/** Whether this host can resolve a name at all (a guest's DNS can only be as good as the host's). */
export function hostResolves(): Promise<boolean> {
  return lookup('deb.debian.org').then(() => true, () => false);
}
