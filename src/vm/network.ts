import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { GuestNetwork } from '../../guest/protocol.js';
import { VmwuError } from '../errors.js';
import { onPath } from './host.js';
import { NET_FD } from './argv.js';
import { supervisedCommand } from './supervise.js';
import type { VmSpec } from './spec.js';

/**
 * passt's arguments: outbound TCP/UDP/ICMP through the host's sockets, as the
 * host's user, with nothing forwarded in. `--no-map-gw` is what keeps the guest
 * off the host's loopback: without it the gateway address is the host's
 * 127.0.0.1. DNS sent to the guest's DNS address goes to the host's resolver
 * (wherever that listens, loopback included): the one host service a guest may
 * use. Pure.
 */
export function passtArgv(fd: number): string[] {
  const n = GuestNetwork;
  return [
    '--foreground', '--quiet', '--one-off', '--fd', String(fd), '--ipv4-only',
    '--address', n.address, '--netmask', String(n.prefixLength), '--gateway', n.gateway,
    '--no-map-gw', '--dns-forward', n.dns, '--no-dhcp-dns', '--no-dhcp-search',
    '--tcp-ports', 'none', '--udp-ports', 'none',
  ];
}

/** The VMWU_NET_* settings the agent brings the interface up with. */
export function guestNetworkEnv(): Record<string, string> {
  const n = GuestNetwork;
  return { NET_ADDRESS: `${n.address}/${n.prefixLength}`, NET_GATEWAY: n.gateway, NET_DNS: n.dns };
}

export interface GuestLink {
  /** QEMU's end, to hand over as descriptor NET_FD. */
  qemuEnd: Socket;
  /** Resolves with passt's last words when it exits. */
  exited: Promise<string>;
  stop(): Promise<void>;
}

/**
 * A connected pair of unix stream sockets (Node has no socketpair): one end for
 * QEMU, one for passt. Both are paused, so nothing is read here before they are
 * handed over.
 */
async function socketPair(dir: string): Promise<[Socket, Socket]> {
  const path = join(dir, 'net.sock');
  await rm(path, { force: true });
  const server = createServer({ pauseOnConnect: true });
  server.listen(path);
  await once(server, 'listening');
  try {
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const client = connect(path);
    await once(client, 'connect');
    client.pause();
    const [peer] = await accepted;
    return [client, peer];
  } finally {
    server.close();
    await rm(path, { force: true });
  }
}

/** Starts passt for one VM; it quits when QEMU closes its end (or dies with vmwu). */
export async function startNetwork(spec: VmSpec): Promise<GuestLink> {
  const passt = onPath('passt');
  if (!passt) throw new VmwuError('NO_PASST', 'a guest network needs passt, which is not installed', 'install the Debian package passt (scripts/setup.sh does)');
  const [qemuEnd, passtEnd] = await socketPair(dirname(spec.qmpSocket!));
  const [cmd, args] = supervisedCommand([passt, ...passtArgv(NET_FD)], spec.user);
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe', passtEnd] });
  } catch (e) {
    qemuEnd.destroy();
    throw e;
  } finally {
    passtEnd.destroy();
  }
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    // Without a syslog (containers, batch nodes) passt says so for every message.
    stderr = (stderr + d.replace(/^Failed to send \d+ bytes to syslog\n?/gm, '')).slice(-2000);
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(`${signal ?? `exit ${code}`}: ${stderr.trim() || 'no message'}`));
    child.once('error', (e) => resolve(e.message));
  });
  return {
    qemuEnd,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
