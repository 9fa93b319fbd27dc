import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { identityState, selfStartTime } from '../store/process-identity.js';
import { list } from '../store/temp-files.js';

/**
 * Directories a vmwu process keeps on this host for itself alone, with no
 * record in the store: in its instances dir, hard links to a store's blobs for
 * a QEMU user that cannot reach the store while the node cache's filesystem is
 * full (src/run/host-setup.ts) and the disks of clones kept warm for jobs to
 * come (src/run/fast-start/warm-pool.ts); on tmpfs, the RAM files of
 * checkpointable jobs (src/run/own-memory.ts). Each goes when its process is
 * done with it; one whose process died says whose it was by its name: the
 * directory is this host's alone, so a pid and its start time say it.
 */

export type OwnedKind = 'blobs' | 'warm' | 'memory';

const NAME = /^\.(blobs|warm|memory)-(\d+)_(\d+)-[0-9a-f]{12}$/;

export function ownedDirIn(parent: string, kind: OwnedKind): string {
  return join(parent, `.${kind}-${process.pid}_${selfStartTime()}-${randomBytes(6).toString('hex')}`);
}

/** Removes the owned dirs in `parent` of vmwu processes of this host that are gone; their names. */
export function reapOwnedDirs(parent: string): string[] {
  const gone: string[] = [];
  for (const n of list(parent)) {
    const m = NAME.exec(n);
    if (!m || identityState(`${m[2]}:${m[3]}`) !== 'dead') continue;
    rmSync(join(parent, n), { recursive: true, force: true });
    gone.push(n);
  }
  return gone;
}
