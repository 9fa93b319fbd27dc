import { closeSync, copyFileSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { baseAptLists, type AptLists } from '../base/apt-lists.js';
import { keptStanzas } from '../base/apt-universe.js';
import type { Base } from '../store/bases.js';
import type { Store } from '../store/store.js';

/**
 * The package lists a build step's apt is given first: the base's, pruned to
 * what `packages` may pull in (src/base/apt-universe.ts), beside the suites'
 * Release files as they are. Written into `work` (the build's work dir); its
 * path and how many stanzas it kept, or null where apt must see the whole
 * lists (no lists to cut, or a name they do not know).
 */
export async function prunedAptLists(store: Pick<Store, 'paths' | 'blobs'>, base: Base, packages: string[], work: string): Promise<{ path: string; stanzas: number } | null> {
  if (!packages.length) return null;
  const lists = await baseAptLists(store, base, work);
  return lists && writePrunedLists(lists, packages, join(work, 'apt-lists-pruned'));
}

/** `lists` pruned to what `packages` may pull in, written to `out`; null where they do not know a name. */
export function writePrunedLists(lists: AptLists, packages: string[], out: string): { path: string; stanzas: number } | null {
  const kept = keptStanzas(lists.universe, packages);
  if (!kept) return null;
  mkdirSync(out);
  // Every Packages file, an empty one too: apt takes a missing one for lists never fetched.
  for (const name of lists.packagesFiles) writeFileSync(join(out, name), readRanges(join(lists.dir, name), kept.get(name) ?? []));
  for (const n of lists.releaseFiles) copyFileSync(join(lists.dir, n), join(out, n));
  return { path: out, stanzas: [...kept.values()].reduce((n, r) => n + r.length, 0) };
}

/** The stanzas at `ranges` of a list, as a Packages file of their own. */
function readRanges(file: string, ranges: [number, number][]): Buffer {
  const fd = openSync(file, 'r');
  try {
    const parts = ranges.map(([start, end]) => {
      const b = Buffer.alloc(end - start);
      readSync(fd, b, 0, b.length, start);
      return b;
    });
    return Buffer.concat(parts.flatMap((p) => [p, Buffer.from('\n\n')]));
  } finally {
    closeSync(fd);
  }
}
