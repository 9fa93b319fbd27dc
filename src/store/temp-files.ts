import { randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { identityState, processStartTime, selfIdentity, selfStartTime } from './process-identity.js';
import { DURABLE_TEMP_NAME } from './durable.js';
import type { StorePaths } from './home.js';

/**
 * Every temporary name vmwu writes inside the store, who writes it, and when it
 * is a leftover (its writer is gone) rather than work in progress. None of them
 * is ever read under that name, so a leftover costs disk space and nothing else.
 *
 * | where | name | writer |
 * |---|---|---|
 * | tmp/ | `build-*`, `base-*`, `import-*`, `data-*`, `push-*`, `pull-*`, `docker-*`, `gather-*` dirs with an `.owner` file | unit builds, base builds, `base add`, bundle import, `data add`, `push`, `pull`, `docker run`, `run --inputs-from` (makeWorkDir) |
 * | tmp/ | `.new-*` | makeWorkDir, before the owner is written |
 * | tmp/ | `.dead-*` | a dead process's work dir, renamed on its way out (removeTemp) |
 * | blobs/sha256/ | `.tmp-<pid>.<start>-<rand>` (`.tmp-<rand>` before owners) | BlobStore.putFile |
 * | blobs/sha256/ | `.partial-<hex>` | a blob arriving from an SSH submitter (resumed on the next send) |
 * | cache/debs/ | `.download-*` dirs | apt-get download of a base build's kernel and busybox |
 * | any | `.<name>.<12 hex>.tmp` | writeFileDurableSync, copyFileDurableSync (run records, reports, task files) |
 * | run and attempt dirs | `.collect-*` dirs | collectOutputs' staging |
 * | experiments' results/ | `.<name>.vmwu-<8 hex>-<n>` | stageOut |
 * | attempt dirs | `.fetch.tar` | the SSH executor's result archive |
 */

/** A leftover's writer cannot be named (no owner in it): it counts as gone this long after its last change. */
export const STALE_TEMP_AGE_MS = 3_600_000;
/** A work dir without an owner file (from an older vmwu) stops counting as in use after this. */
export const OWNERLESS_WORK_DIR_AGE_MS = 2 * 3_600_000;

export const WORK_DIR_OWNER = '.owner';
const WORK_DIR = /^(build|base|import|data|push|pull|docker|gather)-/;
const NEW_WORK_DIR = /^\.new-/;
/** A dead process's work dir being removed: renamed first, so a removal cut short never leaves a dir that looks in use. */
const DEAD_WORK_DIR = /^\.dead-/;
const BLOB_TEMP = /^\.tmp-(?:(\d+)\.(\d+)-[0-9a-f]+$)?/;
const BLOB_PARTIAL = /^\.partial-[0-9a-f]{64}$/;
const COLLECT_STAGING = /^\.collect-/;
const STAGE_OUT_TEMP = /^\..+\.vmwu-[0-9a-f]{8}-\d+$/;
const FETCH_ARCHIVE = /^\.fetch\.tar$/;
const DOWNLOAD = /^\.download-/;
const BLOB_NAME = /^[0-9a-f]{64}$/;

/** `<pid>.<start time>`: names this process in a file name (the store is used by one machine at a time). */
function ownerTag(): string {
  return `${process.pid}.${selfStartTime()}`;
}

/** The temporary name of a blob being written into the store's blob directory. */
export function blobTempName(): string {
  return `.tmp-${ownerTag()}-${randomBytes(6).toString('hex')}`;
}

/**
 * A work dir in the store's tmp/ for a build, base build or import: what it
 * stages there is moved into the blob directory and registered only at the end.
 * It holds its owner's identity from the moment it has its name (created under a
 * temporary name, the owner written, then renamed), so a dir whose process died
 * is told from one in use at once, not after hours. Leftovers of dead owners are
 * removed first: each such operation cleans up after the ones killed before it.
 */
export function makeWorkDir(paths: StoreTempPaths, prefix: 'build-' | 'base-' | 'import-' | 'data-' | 'push-' | 'pull-' | 'docker-' | 'gather-'): string {
  removeDeadLeftovers(paths);
  const staging = mkdtempSync(join(paths.tmp, `.new-${prefix}`));
  writeFileSync(join(staging, WORK_DIR_OWNER), selfIdentity());
  const dir = join(paths.tmp, `${prefix}${basename(staging).slice(`.new-${prefix}`.length)}${randomBytes(2).toString('hex')}`);
  renameSync(staging, dir);
  return dir;
}

export type LeftoverKind = 'work-dir' | 'blob-temp' | 'blob-partial' | 'download' | 'durable-temp' | 'collect-staging' | 'stage-out-temp' | 'fetch-archive' | 'stray';

export interface TempEntry {
  kind: LeftoverKind;
  /** Relative to the store root. */
  path: string;
  bytes: number;
  /** Whether its writer is known to live (work in progress), known to be dead, or cannot be named. */
  writer: 'alive' | 'dead' | 'unknown';
  /** Work in progress: its writer lives, or it is too recent to tell. */
  inUse: boolean;
  /** Safe to delete now: its writer is dead, or it is older than the stale age. Strays (not vmwu's) never are. */
  removable: boolean;
  why: string;
}

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

/** A directory's names; none when it cannot be read (gone, or not a directory). */
export function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function walkBytes(p: string, bytesOf: (st: Stats) => number): number {
  const st = lstatOrNull(p);
  if (!st) return 0;
  if (!st.isDirectory()) return bytesOf(st);
  return list(p).reduce((n, e) => n + walkBytes(join(p, e), bytesOf), 0);
}

/** Apparent bytes of a file or a directory tree (links not followed; what vanishes meanwhile counts nothing). */
export function treeBytes(p: string): number {
  return walkBytes(p, (st) => st.size);
}

/** Bytes a file or a directory tree takes on its disk: a sparse file counts what it holds. */
export function diskBytes(p: string): number {
  return walkBytes(p, (st) => st.blocks * 512);
}

function aged(st: Stats, now: number, limit: number): boolean {
  return now - st.mtimeMs > limit;
}

function ownerState(identity: string | null): 'alive' | 'dead' | 'unknown' {
  if (!identity) return 'unknown';
  const s = identityState(identity);
  return s === 'dead' ? 'dead' : s === 'alive' || s === 'foreign' ? 'alive' : 'unknown';
}

function readOwner(dir: string): string | null {
  try {
    return readFileSync(join(dir, WORK_DIR_OWNER), 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/** A temp entry in tmp/ or blobs/, judged by its owner where it names one, else by its age. */
function judgeOwned(kind: LeftoverKind, path: string, rel: string, st: Stats, owner: 'alive' | 'dead' | 'unknown', now: number, ageLimit: number, ownerWhat: string): TempEntry {
  const old = aged(st, now, ageLimit);
  const inUse = owner === 'alive' || (owner === 'unknown' && !old);
  return {
    kind, path: rel, bytes: treeBytes(path), writer: owner, inUse,
    removable: owner === 'dead' || (owner === 'unknown' && old),
    why: owner === 'dead' ? `its ${ownerWhat} died` : owner === 'alive' ? `its ${ownerWhat} is running` : old ? `unchanged for over ${Math.round(ageLimit / 60_000)} min` : 'recent, writer unknown',
  };
}

export type StoreTempPaths = Pick<StorePaths, 'root' | 'tmp' | 'blobs'>;

/** Work dirs in tmp/, temporary blobs and package downloads: what builds, base builds and imports leave when killed. */
export function scanStoreTemps(paths: StoreTempPaths, now = Date.now()): TempEntry[] {
  const out: TempEntry[] = [];
  for (const n of list(paths.tmp)) {
    const p = join(paths.tmp, n);
    const st = lstatOrNull(p);
    if (!st) continue;
    const rel = relative(paths.root, p);
    if (st.isDirectory() && WORK_DIR.test(n)) {
      const owner = readOwner(p);
      out.push(judgeOwned('work-dir', p, rel, st, ownerState(owner), now, OWNERLESS_WORK_DIR_AGE_MS, 'process'));
    } else if (st.isDirectory() && NEW_WORK_DIR.test(n)) {
      out.push(judgeOwned('work-dir', p, rel, st, 'unknown', now, STALE_TEMP_AGE_MS, 'process'));
    } else if (st.isDirectory() && DEAD_WORK_DIR.test(n)) {
      out.push(judgeOwned('work-dir', p, rel, st, 'dead', now, STALE_TEMP_AGE_MS, 'process'));
    } else {
      out.push({ kind: 'stray', path: rel, bytes: treeBytes(p), writer: 'unknown', inUse: false, removable: false, why: 'not a vmwu work dir' });
    }
  }
  for (const n of list(paths.blobs)) {
    if (BLOB_NAME.test(n)) continue;
    const p = join(paths.blobs, n);
    const st = lstatOrNull(p);
    if (!st) continue;
    const rel = relative(paths.root, p);
    const m = BLOB_TEMP.exec(n);
    if (m && st.isFile()) {
      const owner = m[1] ? (processStartTime(Number(m[1])) === m[2] ? 'alive' : 'dead') : 'unknown';
      out.push(judgeOwned('blob-temp', p, rel, st, owner, now, STALE_TEMP_AGE_MS, 'writer'));
    } else if (BLOB_PARTIAL.test(n) && st.isFile()) {
      out.push(judgeOwned('blob-partial', p, rel, st, 'unknown', now, STALE_TEMP_AGE_MS, 'sender'));
    } else {
      out.push({ kind: 'stray', path: rel, bytes: treeBytes(p), writer: 'unknown', inUse: false, removable: false, why: 'not a blob (its name is no sha256 digest)' });
    }
  }
  const debs = join(paths.root, 'cache', 'debs');
  for (const n of list(debs)) {
    const p = join(debs, n);
    const st = DOWNLOAD.test(n) ? lstatOrNull(p) : null;
    if (st) out.push(judgeOwned('download', p, relative(paths.root, p), st, 'unknown', now, STALE_TEMP_AGE_MS, 'download'));
  }
  return out;
}

/** The kind of a temporary name written in run, attempt and result directories, if it is one. */
export function recordTempKind(name: string, isDir: boolean): LeftoverKind | null {
  if (isDir) return COLLECT_STAGING.test(name) ? 'collect-staging' : null;
  if (DURABLE_TEMP_NAME.test(name)) return 'durable-temp';
  if (FETCH_ARCHIVE.test(name)) return 'fetch-archive';
  if (STAGE_OUT_TEMP.test(name)) return 'stage-out-temp';
  return null;
}

/**
 * Temporary files in run dirs (`runs/`) and experiment dirs: records being
 * written, outputs being collected, results being staged out. Their writers are
 * not named in them, so they count as leftovers once unchanged for the stale age.
 * A job's own work files (`work/` of a run or attempt) are the job's, never looked into.
 */
export function scanRecordTemps(paths: Pick<StorePaths, 'root' | 'runs'>, now = Date.now()): TempEntry[] {
  const out: TempEntry[] = [];
  const walk = (dir: string, depth: number) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      const kind = recordTempKind(e.name, e.isDirectory());
      if (kind) {
        const st = lstatOrNull(p);
        if (st) out.push(judgeOwned(kind, p, relative(paths.root, p), st, 'unknown', now, STALE_TEMP_AGE_MS, 'writer'));
        continue;
      }
      if (e.isDirectory() && e.name !== 'work' && depth < 64) walk(p, depth + 1);
    }
  };
  walk(paths.runs, 0);
  walk(join(paths.root, 'experiments'), 0);
  return out;
}

/**
 * Removes a leftover, by its path relative to the store root. A killed vmwu's
 * tools (dpkg -x, qemu-img) may still be writing into its work dir for a moment:
 * a work dir is renamed `.dead-*` first (whatever a cut-short removal leaves is
 * then known to be dead, never taken for work in progress), and a directory that
 * refills while it is removed is tried again.
 */
export function removeTemp(root: string, path: string): void {
  let target = join(root, path);
  const name = basename(target);
  if (WORK_DIR.test(name) || NEW_WORK_DIR.test(name)) {
    const dead = join(dirname(target), `.dead-${name.replace(/^\.new-/, '')}`);
    try {
      renameSync(target, dead);
      target = dead;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
  }
  rmSync(target, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
}

/** Removes the work dirs and blob temps whose writer is known to be dead; nothing in use or of unknown writer. */
export function removeDeadLeftovers(paths: StoreTempPaths): TempEntry[] {
  const gone: TempEntry[] = [];
  for (const t of scanStoreTemps(paths).filter((x) => x.writer === 'dead')) {
    try {
      removeTemp(paths.root, t.path);
      gone.push(t);
    } catch {
      // Best effort: what stays is found again by the next operation, gc or doctor --check.
    }
  }
  return gone;
}
