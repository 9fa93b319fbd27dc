import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { GuestNetwork } from '../../guest/protocol.js';
import { VmwuError } from '../errors.js';
import { onPath } from './host.js';
import { netSocketPath } from './argv.js';
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
export function passtArgv(socket: string): string[] {
  const n = GuestNetwork;
  return [
    '--quiet', '--foreground', '--one-off', '--socket', socket, '--ipv4-only',
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
  /** Resolves with passt's last words when it exits. */
  exited: Promise<string>;
  stop(): Promise<void>;
}

const LISTEN_WAIT_MS = 10_000;

/**
 * Starts passt for one VM, as QEMU's user, listening in the instance's socket
 * directory; resolves once it listens. It quits when QEMU hangs up (or dies with vmwu).
 */
export async function startNetwork(spec: VmSpec): Promise<GuestLink> {
  const passt = onPath('passt');
  if (!passt) throw new VmwuError('NO_PASST', 'a guest network needs passt, which is not installed', 'install the Debian package passt (scripts/setup.sh does)');
  const socket = netSocketPath(spec);
  await rm(socket, { force: true });
  const [cmd, args] = supervisedCommand([passt, ...passtArgv(socket)], spec.user);
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
  const link: GuestLink = {
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
  // passt binds before it says so; QEMU must not try before the socket is there.
  let gone: string | undefined;
  void exited.then((why) => { gone = why; });
  const until = Date.now() + LISTEN_WAIT_MS;
  while (!existsSync(socket)) {
    if (gone !== undefined || Date.now() > until) {
      await link.stop();
      throw new VmwuError('NETWORK', `passt did not start listening for the guest: ${gone ?? `nothing at ${socket} after ${LISTEN_WAIT_MS} ms`}`, 'run `vmwu doctor`');
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return link;
}
