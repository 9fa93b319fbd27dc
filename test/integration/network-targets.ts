import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { createServer, type Server } from 'node:http';
import { spawn } from 'node:child_process';
import { destroyNetns, listening, SBIN_PATH, sh } from '../../src/executors/netns.js';
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
  stop(): Promise<void>;
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
    `require('http').createServer((q, r) => r.end(${JSON.stringify(outboundToken)} + '\\n')).listen(${port}, ${JSON.stringify(outboundAddress)})`],
  { stdio: 'ignore', env: { ...process.env, PATH: SBIN_PATH } });
  await until(() => listening(outboundAddress, port));

  const loopback: Server = createServer((_q, r) => r.end(`${loopbackToken}\n`));
  await new Promise<void>((resolve) => loopback.listen(0, '127.0.0.1', resolve));
  const loopbackPort = (loopback.address() as { port: number }).port;
  return {
    outboundUrl: `http://${outboundAddress}:${port}/`, outboundToken, loopbackPort, loopbackToken, hostAddress,
    async stop() {
      server.kill('SIGKILL');
      await new Promise<void>((resolve) => loopback.close(() => resolve()));
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
 * (busybox wget, present on every base), and prints what it fetched.
 */
export function reachScript(t: NetworkTargets): string {
  // A refused address may swallow packets rather than refuse them: don't wait for TCP to give up.
  const get = (name: string, url: string) => `busybox timeout 10 busybox wget -q -O - ${url}; echo ${name}=$?`;
  return [
    'busybox ip addr; busybox ip route; cat /etc/resolv.conf',
    get('outbound', t.outboundUrl),
    get('gateway', `http://10.0.2.2:${t.loopbackPort}/`),
    get('hostaddr', `http://${t.hostAddress}:${t.loopbackPort}/`),
    'busybox nslookup deb.debian.org; echo dns=$?',
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
}

/** Whether this host can resolve a name at all (a guest's DNS can only be as good as the host's). */
export function hostResolves(): Promise<boolean> {
  return lookup('deb.debian.org').then(() => true, () => false);
}
