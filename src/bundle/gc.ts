import { readdirSync, statSync, unlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import { allLayers, deleteLayer, unitsUsingBase, type Layer } from '../unit/records.js';
import { removeBase, requireBase, type Base } from '../store/bases.js';
import type { Digest } from '../store/blobs.js';
import type { Db } from '../store/db.js';
import type { Store } from '../store/store.js';

/**
 * Garbage collection of the store: layers no unit reaches, blobs nothing names, and
 * stale temporary files. Conservative by design; "never a used one" rules:
 *
 * - A blob is in use when any table other than `layers` and `settings` mentions its
 *   digest, so blobs that later features record (in tables this file does not know)
 *   are kept too; a layer is in use when such a mention or a unit chain reaches it.
 * - Builds, base builds and imports work in `<store>/tmp/<dir>` and register what
 *   they made only at the end; while such a dir is live, gc removes no layer or blob.
 * - Rows are deleted and blob files unlinked in one IMMEDIATE transaction, so an
 *   import (which moves blobs and registers them in its own transaction) cannot see a
 *   blob as present that gc is about to remove.
 */

/** What a crashed build leaves in tmp/ stops blocking gc this long after its last change. */
export const BUSY_DIR_MAX_AGE_MS = 2 * 3_600_000;
/** Stray `.tmp-*` blob writes (a crashed BlobStore.putFile) are removed after this. */
export const STALE_TMP_AGE_MS = 3_600_000;
/** Covers the instant between a build registering a layer and registering the unit that uses it. */
export const GRACE_MS = 10_000;

export interface GcPlan {
  layers: { digest: Digest; kind: Layer['kind']; size: number }[];
  blobs: { digest: Digest; bytes: number }[];
  tmpFiles: { name: string; bytes: number }[];
  /** Live work dirs in tmp/: while any exists, no layer or blob is removed. */
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
const UNSCANNED = new Set(['layers', 'settings', 'schema_migrations']);

/** Every sha256 digest mentioned in the tables that can hold references. */
export function mentionedDigests(db: Db): Set<string> {
  const found = new Set<string>();
  const tables = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).all() as { name: string }[];
  for (const { name } of tables) {
    if (UNSCANNED.has(name)) continue;
    for (const row of db.prepare(`SELECT * FROM "${name.replace(/"/g, '""')}"`).iterate() as Iterable<Record<string, unknown>>) {
      for (const v of Object.values(row)) {
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

function busyDirs(store: Store, now: number): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(store.paths.tmp);
  } catch {
    return out;
  }
  for (const n of names) {
    const st = statOrNull(join(store.paths.tmp, n));
    if (st?.isDirectory() && now - st.mtimeMs < BUSY_DIR_MAX_AGE_MS) out.push(`tmp/${n}`);
  }
  return out.sort();
}

export function planGc(store: Store, opts: { now?: number; graceMs?: number } = {}): GcPlan {
  const now = opts.now ?? Date.now();
  const grace = opts.graceMs ?? GRACE_MS;
  const plan: GcPlan = { layers: [], blobs: [], tmpFiles: [], busy: busyDirs(store, now), recent: 0 };

  let entries: string[] = [];
  try {
    entries = readdirSync(store.paths.blobs);
  } catch {
    // no blob dir yet: nothing to collect
  }
  for (const n of entries) {
    if (!n.startsWith('.tmp-')) continue;
    const st = statOrNull(join(store.paths.blobs, n));
    if (st?.isFile() && now - st.mtimeMs > STALE_TMP_AGE_MS) plan.tmpFiles.push({ name: n, bytes: st.size });
  }
  if (plan.busy.length) return plan;

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
 * Plans and, unless `dryRun`, removes. The plan is made again inside the write
 * transaction, so what is removed is what was unused at that moment.
 */
export function runGc(store: Store, opts: { dryRun?: boolean; now?: number; graceMs?: number } = {}): GcResult {
  const failed: GcResult['failed'] = [];
  const collect = (): GcPlan => {
    const plan = planGc(store, opts);
    if (opts.dryRun) return plan;
    for (const l of plan.layers) deleteLayer(store.db, l.digest);
    const forget = store.db.prepare('DELETE FROM settings WHERE key = ?');
    for (const b of plan.blobs) {
      forget.run(`verified:${b.digest}`);
      unlinkQuietly(join(store.paths.blobs, b.digest.slice('sha256:'.length)), failed);
    }
    return plan;
  };
  const plan = opts.dryRun ? collect() : store.db.transaction(collect).immediate();
  // Stale temp files are no one's: safe outside the transaction.
  if (!opts.dryRun) for (const t of plan.tmpFiles) unlinkQuietly(join(store.paths.blobs, t.name), failed);
  const failedNames = new Set(failed.map((f) => f.name));
  const freedBytes = [...plan.blobs.map((b) => ({ name: b.digest.slice(7), bytes: b.bytes })), ...plan.tmpFiles]
    .filter((x) => !failedNames.has(x.name)).reduce((n, x) => n + x.bytes, 0);
  return { ...plan, dryRun: Boolean(opts.dryRun), freedBytes, failed };
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
