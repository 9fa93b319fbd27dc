import { readdirSync, rmSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { deleteCheckpointRow, staleCheckpoints } from '../run/checkpoint/records.js';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import { allLayers, deleteLayer, unitsUsingBase, type Layer } from '../unit/records.js';
import { allImageLayers, deleteImageLayer } from '../store/image-layers.js';
import { forgetMissingResults } from '../run/result-cache.js';
import { removeBase, requireBase, type Base } from '../store/bases.js';
import type { Digest } from '../store/blobs.js';
import type { Db } from '../store/db.js';
import { syncDirSync, withFullSync } from '../store/durable.js';
import type { Store } from '../store/store.js';
import { removeTemp, scanStoreTemps, type TempEntry } from '../store/temp-files.js';

/**
 * Garbage collection of the store: layers no unit reaches, converted image layers no
 * base names, blobs nothing names, and
 * stale temporary files. Conservative by design; "never a used one" rules:
 *
 * - A blob is in use when any table other than `layers` and `settings` mentions its
 *   digest, so blobs that later features record (in tables this file does not know)
 *   are kept too; a layer is in use when such a mention or a unit chain reaches it.
 * - Builds, base builds and imports work in `<store>/tmp/<dir>` and register what
 *   they made only at the end; while such a dir's process lives, gc removes no layer
 *   or blob. Dirs and temporary blobs of dead processes are removed
 *   (src/store/temp-files.ts).
 * - Rows go first, files after, so that no crash or power loss leaves a row naming
 *   a blob that is gone: one IMMEDIATE transaction deletes the unused layers' rows
 *   and the blobs' `verified:` marks and is fsynced (`synchronous = FULL`); a second
 *   plans the blobs again and unlinks those still unused. A kill between the two
 *   leaves unused blobs, which the next gc removes. Blobs are unlinked under the
 *   write lock, so an import (which moves blobs and registers them in its own
 *   transaction) cannot see a blob as present that gc is about to remove.
 */

/** Covers the instant between a build registering a layer and registering the unit that uses it. */
export const GRACE_MS = 10_000;

export interface GcPlan {
  layers: { digest: Digest; kind: Layer['kind']; size: number }[];
  blobs: { digest: Digest; bytes: number }[];
  /** Temporary blobs whose writer died or that are stale, by name in the blob directory. */
  tmpFiles: { name: string; bytes: number }[];
  /** Work dirs in tmp/ whose process died (or stale ones from before owners were recorded), relative to the store. */
  workDirs: { name: string; bytes: number }[];
  /** Work dirs in tmp/ in use: while any exists, no layer or blob is removed. */
  busy: string[];
  /** Unreachable layers and unnamed blobs kept only because they are younger than GRACE_MS. */
  recent: number;
}

export interface GcResult extends GcPlan {
  dryRun: boolean;
  freedBytes: number;
  /** Blob files that could not be unlinked (they stay as garbage for the next gc). */
  failed: { name: string; error: string }[];
}

const DIGEST_RE = /sha256:[0-9a-f]{64}/g;
const BLOB_NAME = /^[0-9a-f]{64}$/;
// result_cache: its keys are job digests, not blobs; what it names are out dirs, which gc leaves alone.
const UNSCANNED = new Set(['layers', 'image_layers', 'settings', 'schema_migrations', 'result_cache']);
/**
 * Columns that name blobs without needing them: a run's terms say what it ran
 * (src/run/checkpoint/trust.ts), and a run that may still go on is kept going by
 * its checkpoints' rows, which name their blobs themselves.
 */
const UNSCANNED_COLUMNS: Record<string, Set<string>> = { runs: new Set(['resources']) };

/** Every sha256 digest mentioned in the tables that can hold references. */
export function mentionedDigests(db: Db): Set<string> {
  const found = new Set<string>();
  const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as { name: string }[];
  for (const { name } of tables) {
    if (UNSCANNED.has(name)) continue;
    for (const row of db.prepare(`SELECT * FROM "${name.replace(/"/g, '""')}"`).iterate() as Iterable<Record<string, unknown>>) {
      for (const [column, v] of Object.entries(row)) {
        if (UNSCANNED_COLUMNS[name]?.has(column)) continue;
        if (typeof v === 'string' && v.includes('sha256:')) for (const m of v.match(DIGEST_RE) ?? []) found.add(m);
      }
    }
  }
  return found;
}

function statOrNull(path: string): Stats | null {
  try {
    return statSync(path);
  } catch {
    return null;
  }
}

export function planGc(store: Store, opts: { now?: number; graceMs?: number } = {}): GcPlan {
  const now = opts.now ?? Date.now();
  const grace = opts.graceMs ?? GRACE_MS;
  const temps: TempEntry[] = scanStoreTemps(store.paths, now);
  const plan: GcPlan = {
    layers: [], blobs: [],
    tmpFiles: temps.filter((t) => t.kind === 'blob-temp' && t.removable).map((t) => ({ name: t.path.slice(t.path.lastIndexOf('/') + 1), bytes: t.bytes })),
    workDirs: temps.filter((t) => t.kind === 'work-dir' && t.removable).map((t) => ({ name: t.path, bytes: t.bytes })),
    busy: temps.filter((t) => t.kind === 'work-dir' && t.inUse).map((t) => t.path).sort(),
    recent: 0,
  };
  if (plan.busy.length) return plan;

  let entries: string[] = [];
  try {
    entries = readdirSync(store.paths.blobs);
  } catch {
    // no blob dir yet: nothing to collect
  }
  const mentioned = mentionedDigests(store.db);
  const layers = new Map(allLayers(store.db).map((l) => [l.digest as string, l]));
  const reachable = new Set<string>();
  for (const d of mentioned) {
    for (let l = layers.get(d); l && !reachable.has(l.digest); l = layers.get(l.parent)) reachable.add(l.digest);
  }
  const kept = new Set<string>(mentioned);
  for (const l of layers.values()) {
    if (reachable.has(l.digest)) {
      kept.add(l.digest);
    } else if (now - Date.parse(l.createdAt) < grace) {
      // A young layer keeps its ancestors too: its unit may be about to be registered.
      for (let p: Layer | undefined = l; p && !kept.has(p.digest); p = layers.get(p.parent)) kept.add(p.digest);
      plan.recent++;
    }
  }
  for (const l of layers.values()) {
    if (!kept.has(l.digest)) plan.layers.push({ digest: l.digest, kind: l.kind, size: l.size });
  }
  // A kept layer keeps what it is backed by, also a base root whose base was removed.
  for (const l of layers.values()) if (kept.has(l.digest)) kept.add(l.parent);
  // Converted image layers: kept while a base or a kept layer names them, with what they are backed by.
  const images = allImageLayers(store.db);
  const byDigest = new Map(images.map((l) => [l.digest as string, l]));
  for (const l of images) {
    if (!kept.has(l.digest)) continue;
    for (let p = l.parent ? byDigest.get(l.parent) : undefined; p && !kept.has(p.digest); p = p.parent ? byDigest.get(p.parent) : undefined) kept.add(p.digest);
  }
  for (const l of images) {
    if (kept.has(l.digest)) continue;
    if (now - Date.parse(l.createdAt) < grace) {
      plan.recent++;
      kept.add(l.digest);
      continue;
    }
    plan.layers.push({ digest: l.digest, kind: 'image', size: l.size });
  }
  for (const n of entries) {
    if (!BLOB_NAME.test(n) || kept.has(`sha256:${n}`)) continue;
    const st = statOrNull(join(store.paths.blobs, n));
    if (!st?.isFile()) continue;
    if (now - st.mtimeMs < grace) {
      plan.recent++;
      continue;
    }
    plan.blobs.push({ digest: `sha256:${n}`, bytes: st.size });
  }
  return plan;
}

/**
 * Plans and, unless `dryRun`, removes. The plan is made again inside each write
 * transaction, so what is removed is what was unused at that moment.
 */
export function runGc(store: Store, opts: { dryRun?: boolean; now?: number; graceMs?: number } = {}): GcResult {
  const failed: GcResult['failed'] = [];
  if (opts.dryRun) return { ...planGc(store, opts), dryRun: true, freedBytes: 0, failed };
  const forget = store.db.prepare('DELETE FROM settings WHERE key = ?');
  // 1. Rows: unused layers and the marks of the blobs to go, on the disk before any file goes.
  const plan = withFullSync(store.db, () => store.db.transaction(() => {
    const p = planGc(store, opts);
    for (const l of p.layers) (l.kind === 'image' ? deleteImageLayer : deleteLayer)(store.db, l.digest);
    for (const b of p.blobs) forget.run(`verified:${b.digest}`);
    return p;
  }).immediate());
  // 2. Files: the blobs planned above that are still unused now that their rows are gone.
  const decided = new Set(plan.blobs.map((b) => b.digest));
  const removed = store.db.transaction(() => {
    const now = planGc(store, opts).blobs.filter((b) => decided.has(b.digest));
    for (const b of now) {
      forget.run(`verified:${b.digest}`);
      unlinkQuietly(join(store.paths.blobs, b.digest.slice('sha256:'.length)), failed);
    }
    return now;
  }).immediate();
  if (removed.length) syncDirSync(store.paths.blobs);
  // Cached results whose outputs were removed by hand: forgotten (jobs that took them hold their own links).
  forgetMissingResults(store.db);
  // Leftovers of dead or stale writers are no one's: safe outside the transactions.
  for (const t of plan.tmpFiles) unlinkQuietly(join(store.paths.blobs, t.name), failed);
  for (const w of plan.workDirs) {
    try {
      removeTemp(store.paths.root, w.name);
    } catch (e) {
      failed.push({ name: w.name, error: (e as Error).message });
    }
  }
  const failedNames = new Set(failed.map((f) => f.name));
  const freedBytes = [...removed.map((b) => ({ name: b.digest.slice(7), bytes: b.bytes })), ...plan.tmpFiles, ...plan.workDirs]
    .filter((x) => !failedNames.has(x.name)).reduce((n, x) => n + x.bytes, 0);
  return { ...plan, blobs: removed, dryRun: false, freedBytes, failed };
}

function unlinkQuietly(path: string, failed: GcResult['failed']): void {
  try {
    unlinkSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'ENOENT') failed.push({ name: path.slice(path.lastIndexOf('/') + 1), error: err.message });
  }
}

/**
 * `vmwu base rm`: removes the base's row, refusing while a unit is built on it. The
 * check and the delete share one transaction, so a unit registered meanwhile is seen.
 * The kernel, initrd and root blobs stay until `vmwu gc`.
 */
export function removeUnusedBase(store: Store, name: string): Base {
  return store.db.transaction((): Base => {
    const base = requireBase(store.db, name);
    const users = unitsUsingBase(store.db, base.digest);
    if (users.length) {
      throw new VmwuError('BASE_IN_USE', `base ${base.name} is used by ${users.length} unit(s): ${users.join(', ')}`,
        `remove them first (vmwu rm ${users[0]}), then remove the base`);
    }
    removeBase(store.db, base.name);
    return base;
  }).immediate();
}

/** A checkpoint takes seconds: a directory of the checkpoints dir that no row names and older than this is a killed writer's. */
const CHECKPOINT_LEFTOVER_MS = 3600_000;

/** Directories in checkpoints/ no row names: half-written (`.tmp`) or never recorded, by a process killed long ago. */
function unrecordedCheckpointDirs(store: Store, now: number): (StaleCheckpoint & { dir: string })[] {
  let names: string[];
  try {
    names = readdirSync(store.paths.checkpoints);
  } catch {
    return [];
  }
  const known = new Set((store.db.prepare('SELECT id FROM checkpoints').all() as { id: string }[]).map((r) => r.id));
  return names.filter((n) => /^ck-[0-9a-f]{12}(\.tmp)?$/.test(n) && !known.has(n)).flatMap((n) => {
    const dir = join(store.paths.checkpoints, n);
    const st = statSync(dir);
    return now - st.mtimeMs > CHECKPOINT_LEFTOVER_MS ? [{ id: n, runId: '', bytes: 0, why: 'left over by a killed checkpoint', dir }] : [];
  });
}

/** A checkpoint gc removes, and why. */
export interface StaleCheckpoint {
  id: string;
  runId: string;
  bytes: number;
  why: string;
}

/**
 * Removes checkpoints no one can need (src/run/checkpoint/records.ts
 * staleCheckpoints): rows first, in one synced transaction, then their
 * directories. Before the blob pass, so that blobs only they named go in the same gc.
 */
export function pruneCheckpoints(store: Store, opts: { dryRun?: boolean; now?: number } = {}): StaleCheckpoint[] {
  const stale = [
    ...staleCheckpoints(store.db).map((c) => ({ id: c.id, runId: c.runId, bytes: c.bytes, why: c.why, dir: c.dir })),
    ...unrecordedCheckpointDirs(store, opts.now ?? Date.now()),
  ];
  if (opts.dryRun || !stale.length) return stale.map(({ dir: _, ...c }) => c);
  withFullSync(store.db, () => store.db.transaction(() => {
    for (const c of stale) deleteCheckpointRow(store.db, c.id);
  }).immediate());
  for (const c of stale) rmSync(c.dir, { recursive: true, force: true });
  return stale.map(({ dir: _, ...c }) => c);
}
