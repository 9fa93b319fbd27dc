import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTool } from '../image/tool.js';
import { baseTop, listBases, type Base } from '../store/bases.js';
import { hexOf } from '../store/blobs.js';
import { writeFileDurableSync } from '../store/durable.js';
import type { Store } from '../store/store.js';
import { indexStanzas, universeFromJson, universeOf, universeToJson, type Universe } from './apt-universe.js';

/**
 * The package lists an apt base ships (/var/lib/apt/lists), read once from its
 * root image on the host and kept in the store's cache by the root's digest, so
 * a build can give its apt only what it may install (src/base/apt-universe.ts),
 * with the index of their stanzas that this takes.
 *
 * The image is read with e2fsprogs' debugfs on a raw copy (`qemu-img convert`):
 * nothing is mounted, and no path in the image can lead outside it. Only
 * regular files with apt's plain names are taken, each no larger than a list
 * can be, since an imported image's lists are as untrusted as the rest of it.
 */

const LISTS = '/var/lib/apt/lists';
/** apt's names for a suite's Release files and its Packages indexes (uncompressed: how apt keeps them). */
const LIST_NAME = /^[A-Za-z0-9._~%+-]+_(InRelease|Release|Release\.gpg|Packages)$/;
/** bookworm main's Packages is 50 MB. */
const LIST_MAX_BYTES = 256 * 1024 ** 2;

function aptListsRoot(store: Pick<Store, 'paths'>): string {
  return join(store.paths.cache, 'apt-lists');
}

/** Where a base's lists are kept: `cache/apt-lists/<root hex>`. */
export function aptListsDir(store: Pick<Store, 'paths'>, base: Base): string {
  return join(aptListsRoot(store), hexOf(baseTop(base)));
}

/** `vmwu gc`: the kept lists of bases no longer in the store, removed unless `dryRun`. */
export function pruneAptLists(store: Pick<Store, 'paths' | 'db'>, o: { dryRun?: boolean } = {}): { name: string; bytes: number }[] {
  const root = aptListsRoot(store);
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const used = new Set(listBases(store.db).map((b) => hexOf(baseTop(b))));
  // Only what readAptLists names: anything else there is not vmwu's to remove.
  return names.filter((n) => /^[0-9a-f]{64}$/.test(n) && !used.has(n)).map((name) => {
    const dir = join(root, name);
    const bytes = readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
    if (!o.dryRun) rmSync(dir, { recursive: true, force: true });
    return { name, bytes };
  });
}

/** The Packages files, or the Release files, in a dir of lists. */
function listFiles(dir: string, kind: 'packages' | 'release'): string[] {
  return readdirSync(dir).filter((n) => LIST_NAME.test(n) && n.endsWith('_Packages') === (kind === 'packages')).sort();
}

/** An entry of `debugfs -R 'ls -p DIR'`: `/inode/mode/uid/gid/name/size/`. */
export function parseDebugfsLs(out: string): { name: string; mode: number; size: number }[] {
  const entries: { name: string; mode: number; size: number }[] = [];
  for (const line of out.split('\n')) {
    const m = /^\/\d+\/([0-7]+)\/\d+\/\d+\/(.*)\/(\d*)\/$/.exec(line.trim());
    if (m) entries.push({ mode: parseInt(m[1]!, 8), name: m[2]!, size: Number(m[3] || 0) });
  }
  return entries;
}

/** A base's lists as kept: their dir, its Packages files and the suites' Release files (which say where each comes from and that it is trusted), and their index. */
export interface AptLists {
  dir: string;
  packagesFiles: string[];
  releaseFiles: string[];
  universe: Universe;
}

/**
 * The base's lists, read from its image the first time (into `work`, a work
 * dir of the caller's, then moved into the cache whole); null for a base
 * without apt or without Packages lists (an image whose lists were cleaned
 * away), which is remembered as an empty dir. A Debian base build reads them
 * at once, so no unit build waits for it.
 */
export async function baseAptLists(store: Pick<Store, 'paths' | 'blobs'>, base: Base, work: string): Promise<AptLists | null> {
  if (base.packageManager !== 'apt') return null;
  const dir = aptListsDir(store, base);
  if (!existsSync(dir)) await readAptLists(store, base, work, dir);
  const packagesFiles = listFiles(dir, 'packages');
  return packagesFiles.length ? { dir, packagesFiles, releaseFiles: listFiles(dir, 'release'), universe: keptUniverse(dir, packagesFiles) } : null;
}

async function readAptLists(store: Pick<Store, 'paths' | 'blobs'>, base: Base, work: string, dir: string): Promise<void> {
  const raw = join(work, 'apt-lists-root.raw');
  const staged = join(work, 'apt-lists');
  const script = join(work, 'apt-lists.debugfs');
  mkdirSync(staged);
  try {
    await runTool('qemu-img', ['convert', '-O', 'raw', store.blobs.path(baseTop(base)), raw]);
    const { stdout } = await runTool('debugfs', ['-R', `ls -p ${LISTS}`, raw]);
    const take = parseDebugfsLs(stdout).filter((e) => (e.mode & 0o170000) === 0o100000 && LIST_NAME.test(e.name) && e.size <= LIST_MAX_BYTES);
    if (take.some((e) => e.name.endsWith('_Packages'))) {
      writeFileSync(script, take.map((e) => `dump ${LISTS}/${e.name} ${e.name}\n`).join(''));
      await runTool('debugfs', ['-f', script, raw], { cwd: staged });
    }
  } finally {
    rmSync(raw, { force: true });
    rmSync(script, { force: true });
  }
  mkdirSync(aptListsRoot(store), { recursive: true });
  try {
    renameSync(staged, dir);
  } catch (e) {
    // Another build (on this host or another of the store's) got there first: its copy serves.
    if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/** The lists' index, kept beside them: reading and splitting 50 MB of lists takes longer than a build should wait each time. */
const UNIVERSE = 'vmwu-universe-2.json';

function keptUniverse(dir: string, packagesFiles: string[]): Universe {
  const file = join(dir, UNIVERSE);
  let kept: Universe | null = null;
  try {
    kept = universeFromJson(readFileSync(file, 'utf8'));
  } catch {
    // Not made yet.
  }
  if (kept) return kept;
  // latin1: one character a byte, so the index's offsets are the file's.
  const u = universeOf(Object.fromEntries(packagesFiles.map((n) => [n, indexStanzas(readFileSync(join(dir, n), 'latin1'))])));
  writeFileDurableSync(file, universeToJson(u));
  return u;
}
