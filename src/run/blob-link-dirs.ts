import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { identityState, processStartTime } from '../store/process-identity.js';
import { list } from '../store/temp-files.js';

/**
 * Directories of hard links to a store's blobs beside a job's instances, for a
 * QEMU user that cannot reach the store while the node cache's filesystem is
 * full (src/run/host-setup.ts). Each is removed when its job lets the cache go;
 * a vmwu that died leaves its own, and its name says whose it was: the
 * instances dir is this host's alone, so a pid and its start time say it.
 */

const NAME = /^\.blobs-(\d+)_(\d+)-[0-9a-f]{12}$/;

export function blobLinkDirIn(instances: string): string {
  return join(instances, `.blobs-${process.pid}_${processStartTime(process.pid) ?? '0'}-${randomBytes(6).toString('hex')}`);
}

/** Removes the link dirs of vmwu processes of this host that are gone; their names. Hard links: only entries go, no blob. */
export function reapBlobLinkDirs(instances: string): string[] {
  const gone: string[] = [];
  for (const n of list(instances)) {
    const m = NAME.exec(n);
    if (!m || identityState(`${m[1]}:${m[2]}`) !== 'dead') continue;
    rmSync(join(instances, n), { recursive: true, force: true });
    gone.push(n);
  }
  return gone;
}
