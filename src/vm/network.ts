import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname, join } from 'node:path';
import { GuestNetwork } from '../../guest/protocol.js';
import { VmwuError } from '../errors.js';
import { onPath } from './host.js';
import { netSocketPath } from './argv.js';
import { GuestDnsRelay } from './guest-dns.js';
import { framed, ipv4ToInt, judgeGuestFrame } from './guest-frames.js';
import { onFrames } from './frame-stream.js';
import { supervisedCommand } from './supervise.js';
import type { VmSpec } from './spec.js';

/**
 * A guest's network (`--network`, builds): passt for outbound traffic, started as QEMU's user, and
 * vmwu's relay between them that filters frames and answers DNS.
 */

/**
 * passt's arguments: outbound TCP/UDP/ICMP through the host's sockets, as the
 * host's user, with nothing forwarded in, and no DNS of its own (vmwu answers
 * it: src/vm/guest-dns.ts). `--no-map-gw` keeps the gateway address from being
 * the host's 127.0.0.1; what the guest addresses directly is vmwu's to filter
 * (src/vm/guest-frames.ts), since passt connects to any address, loopback
 * included. Pure.
 */
export function passtArgv(socket: string): string[] {
  const n = GuestNetwork;
  return [
    '--quiet', '--foreground', '--one-off', '--socket', socket, '--ipv4-only',
    '--address', n.address, '--netmask', String(n.prefixLength), '--gateway', n.gateway,
    '--no-map-gw', '--dns', 'none', '--no-dhcp-dns', '--no-dhcp-search',
    '--tcp-ports', 'none', '--udp-ports', 'none',
  ];
}

/** This host's own IPv4 addresses: a guest must not reach its services by them. */
function hostAddresses(): Set<number> {
  const out = new Set<number>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4') out.add(ipv4ToInt(a.address));
  }
  return out;
}

/**
 * Carries frames between QEMU (`guest`) and passt, whole, and only those the
 * guest may send; DNS is answered here. Either side closing ends both.
 */
function relayFrames(guest: Socket, passt: Socket): GuestDnsRelay {
  const local = hostAddresses();
  const toGuest = (frame: Buffer) => guest.write(framed(frame));
  const dns = new GuestDnsRelay(toGuest);
  const pipe = (from: Socket, to: Socket, pass: (frame: Buffer) => void) => onFrames(from, (frames) => {
    frames.forEach(pass);
    // Back-pressure: a guest (or the network) faster than the other side waits for it.
    if (to.writableNeedDrain && !from.isPaused()) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  pipe(guest, passt, (frame) => {
    const v = judgeGuestFrame(frame, local);
    if (v.pass) passt.write(framed(frame));
    else if (v.dns) dns.ask(v.dns);
  });
  pipe(passt, guest, toGuest);
  const end = () => {
    guest.destroy();
    passt.destroy();
    dns.close();
  };
  for (const s of [guest, passt]) s.on('close', end).on('error', end);
  return dns;
}

/** The VMWU_NET_* settings the agent brings the interface up with. */
export function guestNetworkEnv(): Record<string, string> {
  const n = GuestNetwork;
  return { NET_ADDRESS: `${n.address}/${n.prefixLength}`, NET_GATEWAY: n.gateway, NET_DNS: n.dns };
}

export interface GuestLink {
  /** Resolves with passt's last words when it exits. */
  exited: Promise<string>;
  stop(): Promise<void>;
}

const LISTEN_WAIT_MS = 10_000;

/**
 * Starts passt for one VM, as QEMU's user, in the instance's socket directory,
 * and vmwu's frame relay where QEMU connects (netSocketPath); resolves once both
 * listen. passt quits when the relay hangs up, which it does when QEMU does.
 */
export async function startNetwork(spec: VmSpec): Promise<GuestLink> {
  const passt = onPath('passt');
  if (!passt) throw new VmwuError('NO_PASST', 'a guest network needs passt, which is not installed', 'install the Debian package passt (scripts/setup.sh does)');
  const guestSocket = netSocketPath(spec);
  const passtSocket = join(dirname(guestSocket), 'passt.sock');
  await rm(passtSocket, { force: true });
  const [cmd, args] = supervisedCommand([passt, ...passtArgv(passtSocket)], spec.user);
  const child: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    // Without a syslog (containers, batch nodes) passt says so for every message.
    stderr = (stderr + d.replace(/^Failed to send \d+ bytes to syslog\n?/gm, '')).slice(-2000);
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(`${signal ?? `exit ${code}`}: ${stderr.trim() || 'no message'}`));
    child.once('error', (e) => resolve(e.message));
  });
  const server = createServer();
  const sockets: Socket[] = [];
  let dns: GuestDnsRelay | undefined;
  const link: GuestLink = {
    exited,
    async stop() {
      server.close();
      sockets.forEach((s) => s.destroy());
      dns?.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  // passt binds before it says so; QEMU must not try before the socket is there.
  let gone: string | undefined;
  void exited.then((why) => { gone = why; });
  const until = Date.now() + LISTEN_WAIT_MS;
  while (!existsSync(passtSocket)) {
    if (gone !== undefined || Date.now() > until) {
      await link.stop();
      throw new VmwuError('NETWORK', `passt did not start listening for the guest: ${gone ?? `nothing at ${passtSocket} after ${LISTEN_WAIT_MS} ms`}`, 'run `vmwu doctor`');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await rm(guestSocket, { force: true });
  server.once('connection', (guest: Socket) => {
    server.close();
    const toPasst = connect(passtSocket);
    sockets.push(guest, toPasst);
    toPasst.once('connect', () => {
      dns = relayFrames(guest, toPasst);
    });
    toPasst.once('error', () => guest.destroy());
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(guestSocket, () => resolve());
    });
    if (spec.user) await chown(guestSocket, spec.user.uid, spec.user.gid);
  } catch (e) {
    await link.stop();
    throw new VmwuError('NETWORK', `cannot listen for the guest's network at ${guestSocket}: ${(e as Error).message}`, 'run `vmwu doctor`');
  }
  return link;
}
