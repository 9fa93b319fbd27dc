import { chownSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { QemuUser } from './qemu-user.js';

/**
 * One VM's end of a multi-VM job's segment when the hub runs elsewhere (the
 * submitter of an SSH pool sweep): a unix socket in a private directory for this
 * VM's QEMU (`-netdev stream`), whose bytes go both ways over `upstream`, a
 * channel to the hub that vmwu authenticated (an SSH forward). As the hub's own
 * sockets, the first connection is QEMU's and the socket then goes.
 */

export interface SegmentLink {
  socket: string;
  close(): void;
}

/**
 * `onHubGone`: the hub's end went (its host stopped, the network between failed)
 * while this VM's QEMU still ran: the VM has no way to the job's others from then on.
 */
export async function startSegmentLink(dir: string, upstream: () => Promise<Duplex>, user?: QemuUser, onHubGone?: () => void): Promise<SegmentLink> {
  const socket = join(dir, 'vm.sock');
  const ends: Duplex[] = [];
  const server = createServer((qemu: Socket) => {
    server.close();
    rmSync(socket, { force: true });
    ends.push(qemu);
    let qemuGone = false;
    const down = () => ends.forEach((s) => s.destroy());
    const hubGone = () => {
      down();
      // QEMU's exit takes the link down too: that is the VM ending, not the hub going.
      if (!qemuGone) onHubGone?.();
    };
    const qemuEnded = () => {
      qemuGone = true;
      down();
    };
    qemu.on('error', qemuEnded).on('close', qemuEnded);
    upstream().then((up) => {
      ends.push(up);
      up.on('error', hubGone).on('close', hubGone);
      if (qemu.destroyed) return down();
      qemu.pipe(up);
      up.pipe(qemu);
    }, hubGone);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  if (user) chownSync(socket, user.uid, user.gid);
  return {
    socket,
    close() {
      server.close();
      for (const s of ends) s.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A connected unix socket (the SSH forward of the hub, on a pool host). */
export function connectUnix(path: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}
