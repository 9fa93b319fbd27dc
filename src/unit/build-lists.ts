import { closeSync, copyFileSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { aptPackagesFiles, baseAptLists } from '../base/apt-lists.js';
import type { Base } from '../store/bases.js';
import { writeFileDurableSync } from '../store/durable.js';
import type { Store } from '../store/store.js';
import { indexStanzas, keptStanzas, universeFromJson, universeOf, universeToJson, type Universe } from './apt-universe.js';

/**
 * The package lists a build step's apt is given first: the base's, cut down to
 * what `packages` may pull in (src/unit/apt-universe.ts), beside the suites'
 * Release files as they are. Written into `work` (the build's work dir); its
 * path and how many stanzas it kept, or null where apt must see the whole
 * lists (no lists to cut, or a name they do not know).
 */
export async function prunedAptLists(store: Pick<Store, 'paths' | 'blobs'>, base: Base, packages: string[], work: string): Promise<{ path: string; stanzas: number } | null> {
  if (!packages.length) return null;
  const lists = await baseAptLists(store, base, work);
  if (!lists) return null;
  const packagesFiles = aptPackagesFiles(lists);
  const kept = keptStanzas(listsUniverse(lists, packagesFiles), packages);
  if (!kept) return null;
  const out = join(work, 'apt-lists-pruned');
  mkdirSync(out);
  // Every Packages file, an empty one too: apt takes a missing one for lists never fetched.
  for (const name of packagesFiles) writeFileSync(join(out, name), readRanges(join(lists, name), kept.get(name) ?? []));
  for (const n of readdirSync(lists).filter((n) => !n.endsWith('_Packages') && n !== UNIVERSE)) copyFileSync(join(lists, n), join(out, n));
  return { path: out, stanzas: [...kept.values()].reduce((n, r) => n + r.length, 0) };
}

/** The lists' index, kept beside them: reading and splitting 50 MB of lists takes longer than a build should wait each time. */
const UNIVERSE = 'vmwu-universe-2.json';

function listsUniverse(lists: string, packagesFiles: string[]): Universe {
  const file = join(lists, UNIVERSE);
  let kept: Universe | null = null;
  try {
    kept = universeFromJson(readFileSync(file, 'utf8'));
  } catch {
    // Not made yet.
  }
  if (kept) return kept;
  // latin1: one character a byte, so the index's offsets are the file's.
  const u = universeOf(Object.fromEntries(packagesFiles.map((n) => [n, indexStanzas(readFileSync(join(lists, n), 'latin1'))])));
  writeFileDurableSync(file, universeToJson(u));
  return u;
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
