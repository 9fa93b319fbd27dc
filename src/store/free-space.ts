import { existsSync, statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { VmwuError } from '../errors.js';
import { formatBytes } from '../quantities.js';

/** Room on a filesystem checked before large writes (a dataset's image and blob), so that vmwu refuses up front instead of filling the disk halfway. */

/** Bytes an unprivileged writer may still use on a path's filesystem (its nearest existing directory's). */
export type FreeBytes = (path: string) => number;

function existing(path: string): string {
  let p = path;
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  return p;
}

export const freeBytes: FreeBytes = (path) => {
  const s = statfsSync(existing(path));
  return s.bavail * s.bsize;
};

/** Whether two paths (or their nearest existing directories) are on one filesystem, so a rename moves between them without a copy. */
export function sameFilesystem(a: string, b: string): boolean {
  return statSync(existing(a)).dev === statSync(existing(b)).dev;
}

export interface SpaceNeed {
  /** Where the bytes will be written. */
  dir: string;
  bytes: number;
  /** What they are, for the message: "the dataset image of /data/x". */
  what: string;
}

export interface SpaceShortfall { dir: string; needed: number; free: number; what: string }

/** The first filesystem that lacks room for what will be written on it (needs on one filesystem add up), or null. */
export function shortOfSpace(needs: SpaceNeed[], free: FreeBytes = freeBytes): SpaceShortfall | null {
  const byFs = new Map<number, SpaceNeed[]>();
  for (const n of needs) {
    if (n.bytes <= 0) continue;
    const dev = statSync(existing(n.dir)).dev;
    byFs.set(dev, [...(byFs.get(dev) ?? []), n]);
  }
  for (const group of byFs.values()) {
    const needed = group.reduce((s, n) => s + n.bytes, 0);
    const have = free(group[0]!.dir);
    if (needed > have) return { dir: group[0]!.dir, needed, free: have, what: group.map((n) => n.what).join(' and ') };
  }
  return null;
}

/**
 * Refuses work that would fill a disk, before it writes anything: a full disk met
 * halfway costs the time spent and can starve everything else on it (the store's
 * database, running jobs).
 */
export function checkFreeSpace(needs: SpaceNeed[], hint: string, free: FreeBytes = freeBytes): void {
  const s = shortOfSpace(needs, free);
  if (s) throw new VmwuError('NO_SPACE', `${s.what} ${s.what.includes(' and ') ? 'need' : 'needs'} about ${formatBytes(s.needed)} on the filesystem of ${s.dir}, which has ${formatBytes(s.free)} free`, hint);
}
