import { chownSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { framed } from './guest-frames.js';
import { onFrames } from './frame-stream.js';
import { frameTargets } from './job-segment.js';
import type { QemuUser } from './qemu-user.js';

/**
 * The hub of a multi-VM job's private segment (src/vm/job-segment.ts), run by
 * vmwu for the job: each VM's QEMU connects its segment NIC (`-netdev stream`) to
 * a unix socket of its own in a directory only vmwu (and QEMU's user) can enter;
 * the first connection on each socket is that VM's, and the socket is then gone,
 * so nothing else can join. Frames go only between the job's VMs: the hub has no
 * port to the host or anywhere else, so the segment has no route out.
 */

export interface SegmentHub {
  /** VM k's socket: what its QEMU connects to. */
  sockets: string[];
  /**
   * VM k's end arrives some other way than its socket (an SSH forward from the
   * host it runs on): it is taken if VM k has none yet, and its socket goes.
   */
  attach(k: number, stream: Duplex): boolean;
  /** Frames dropped (spoofed source, unknown destination, a VM that does not read), for the job's record. */
  dropped(): number;
  close(): void;
}

/** What the hub holds for one VM that is slow to read: beyond it, frames to that VM are dropped. */
const PEER_BUFFER_MAX = 4 * 1024 * 1024;

/** `dir`: a private directory for its sockets (src/run/segment-dir.ts), removed when the hub closes. */
export async function startSegmentHub(dir: string, n: number, user?: QemuUser): Promise<SegmentHub> {
  const sockets = Array.from({ length: n }, (_, k) => join(dir, `vm-${k}.sock`));
  const peers: (Duplex | undefined)[] = new Array(n).fill(undefined);
  const servers: Server[] = [];
  let dropped = 0;
  const close = () => {
    for (const s of servers) s.close();
    for (const p of peers) p?.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  const carry = (k: number, peer: Duplex) => {
    peers[k] = peer;
    onFrames(peer, (frames) => {
      for (const f of frames) {
        const to = frameTargets(f, k, n);
        if (!to.length) dropped++;
        for (const t of to) {
          const p = peers[t];
          // As a switch does: a VM that does not read its frames loses them, and no guest can make vmwu hold more.
          if (!p || p.writableLength > PEER_BUFFER_MAX) dropped++;
          else p.write(framed(f));
        }
      }
    });
    peer.on('error', () => peer.destroy());
  };
  // One VM per port: the first to come is it; its socket goes at once.
  const take = (k: number): boolean => {
    if (peers[k] || k < 0 || k >= n) return false;
    servers[k]?.close();
    rmSync(sockets[k]!, { force: true });
    return true;
  };
  try {
    for (const [k, path] of sockets.entries()) {
      const server = createServer((peer) => {
        if (!take(k)) peer.destroy();
        else carry(k, peer);
      });
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => resolve());
      });
      if (user) chownSync(path, user.uid, user.gid);
    }
  } catch (e) {
    close();
    throw e;
  }
  const attach = (k: number, stream: Duplex): boolean => {
    if (!take(k)) {
      stream.destroy();
      return false;
    }
    carry(k, stream);
    return true;
  };
  return { sockets, attach, dropped: () => dropped, close };
}
