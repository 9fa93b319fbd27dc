import { renameSync, rmSync, statSync } from 'node:fs';
import { chmod, rm } from 'node:fs/promises';
import { VmwuError } from '../errors.js';
import { checkErofsImage } from '../data/erofs-image.js';
import { findDataset, insertDataset } from '../data/records.js';
import { formatDatasetRef, parseDatasetRef } from '../data/ref.js';
import { findUnit, importLayer, upsertUnit, type UnitManifest } from '../unit/records.js';
import { findBase, registerBase, type Base } from '../store/bases.js';
import { hexOf, type Digest } from '../store/blobs.js';
import { putSetting } from '../store/db.js';
import { syncDirSync, syncFile } from '../store/durable.js';
import { noSpaceError } from '../store/no-space.js';
import type { Store } from '../store/store.js';
import { makeWorkDir } from '../store/temp-files.js';
import { readBundle } from './archive.js';
import { verifyBundle } from '../sign/bundle-signature.js';
import type { BundleManifest } from './manifest.js';
import { checkChainLink, qcow2Info } from './qcow.js';

/**
 * Reading a `.vmwu` bundle into the store (`vmwu import`): every digest and chain link checked in a
 * staging directory before anything is registered, so a failed import leaves the store as it was.
 */

export interface ImportOptions {
  /** Replace a unit of the same name and version that has other content. */
  force?: boolean;
  /** A public key: the bundle must carry its signature (`FILE.sig`, see src/sign/bundle-signature.ts) or nothing is read. */
  verify?: string;
  onStart?(totalBytes: number, blobs: number): void;
  onProgress?(bytes: number): void;
  signal?: AbortSignal;
}

export interface ImportResult {
  unit: string;
  digest: Digest;
  /** The base as it is named in this store; `imported` when the bundle brought it. */
  base: { name: string; digest: Digest; imported: boolean; renamedFrom?: string };
  layers: number;
  blobs: { total: number; added: number; present: number };
  bytes: number;
  /** False when the same unit (same digest) was already here. */
  changed: boolean;
  /** Datasets (NAME:VERSION) the bundle carried: newly registered, or already here with the same content. */
  datasets: { added: string[]; present: string[] };
  /** Datasets the unit's `data:` names that this store still lacks: its jobs will be refused until they are added. */
  missingData: string[];
}

/** A name for an imported base that does not take over a different local base of the same name. */
function freeBaseName(store: Store, base: Base): string {
  const local = findBase(store.db, base.name);
  if (!local || local.digest === base.digest) return base.name;
  return `${base.name}-${hexOf(base.digest).slice(0, 12)}`;
}

/**
 * The state a bundle needs in the target store, checked once as soon as the manifest
 * is read (so a doomed import does not copy gigabytes first) and again inside the
 * transaction that registers it.
 */
export function checkTarget(store: Store, m: BundleManifest, force: boolean): { localBase: Base | undefined } {
  const localBase = findBase(store.db, m.base.digest);
  if (!localBase && !m.withBase) {
    throw new VmwuError('NO_BASE', `the bundle was exported without its base, and base ${m.base.name} (${m.base.digest}) is not in this store`,
      `export with --with-base, or build/import the base first${/^(tiny|debian)(:|$)/.test(m.base.name) ? ` (vmwu base build ${m.base.name.split(':')[0]})` : ''}`);
  }
  if (localBase && localBase.root !== m.base.root) {
    throw new VmwuError('BAD_BUNDLE', `base ${m.base.digest} in this store has root ${localBase.root}, the bundle says ${m.base.root}`);
  }
  for (const d of m.datasets ?? []) {
    const local = findDataset(store.db, d);
    if (local && local.digest !== d.digest) {
      throw new VmwuError('DATASET_EXISTS', `this store already has dataset ${formatDatasetRef(d)} with other content (${local.digest.slice(7, 19)}, the bundle has ${d.digest.slice(7, 19)})`,
        `a version names one content: remove the local one first (vmwu data rm ${formatDatasetRef(d)}) if it is no longer needed`);
    }
  }
  const existing = findUnit(store.db, `${m.unit.name}:${m.unit.version}`);
  if (existing && existing.digest !== m.unit.digest && !force) {
    throw new VmwuError('UNIT_EXISTS', `this store already has ${m.unit.name}:${m.unit.version} with other content (${existing.digest.slice(0, 19)}, the bundle has ${m.unit.digest.slice(0, 19)})`,
      `remove it first (vmwu rm ${m.unit.name}:${m.unit.version}) or import with --force to replace it`);
  }
  return { localBase };
}

/**
 * `vmwu import`: stream the bundle into a staging dir inside the store, verify every
 * digest, size and chain link there, and only then move the blobs into the blob dir
 * and register base, layers and unit in one transaction. Any failure before that
 * leaves the store as it was.
 */
export async function importBundle(store: Store, file: string, o: ImportOptions = {}): Promise<ImportResult> {
  if (o.verify) await verifyBundle(file, o.verify);
  const staging = makeWorkDir(store.paths, 'import-');
  try {
    const r = await readBundle({
      file, staging, signal: o.signal, onProgress: o.onProgress,
      onManifest: (m) => {
        checkTarget(store, m, Boolean(o.force));
        o.onStart?.(m.blobs.reduce((n, b) => n + b.size, 0), m.blobs.length);
      },
    });
    return await installBundle(store, r.manifest, r.staged, { force: Boolean(o.force), bytes: r.bytes, signal: o.signal });
  } catch (e) {
    throw noSpaceError(e, { dir: store.paths.tmp, store: store.paths.root });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Registers what a bundle or a pulled unit carries, once its blobs are staged in the
 * store's tmp directory (`staged`: digest → file; blobs the store already has may be
 * left out): every staged layer's chain link checked, then the blobs moved in and
 * base, layers and unit registered in one transaction. Any failure before that
 * leaves the store as it was.
 */
export async function installBundle(store: Store, m: BundleManifest, staged: Map<Digest, string>, o: { force: boolean; bytes: number; signal?: AbortSignal }): Promise<ImportResult> {
    for (const [i, l] of m.layers.entries()) {
      const label = `layer ${i + 1} of ${m.layers.length} (${l.digest.slice(0, 19)})`;
      const path = staged.get(l.digest);
      if (path) checkChainLink(await qcow2Info(path, label), label, l.parent);
    }
    const root = staged.get(m.base.root);
    if (m.withBase && root) {
      const label = `root disk of base ${m.base.name}`;
      checkChainLink(await qcow2Info(root, label), label, null);
    }
    for (const d of m.datasets ?? []) {
      const path = staged.get(d.digest);
      if (path) checkErofsImage(path, `the image of dataset ${formatDatasetRef(d)}`);
    }
    o.signal?.throwIfAborted();

    // On the disk before any row or verified mark can name them.
    for (const path of staged.values()) {
      await chmod(path, 0o400);
      await syncFile(path);
    }

    // Verified: from here on the store changes, all under the write lock, so gc (which
    // unlinks under the same lock) cannot remove a blob this import counts as present.
    return store.db.transaction((): ImportResult => {
      const moved: string[] = [];
      let added = 0;
      try {
        const { localBase } = checkTarget(store, m, o.force);
        // Blobs first, so the rows never name a missing blob.
        for (const [digest, path] of staged) {
          const dest = store.blobs.path(digest);
          // A blob already there is kept, unless it is short: torn by a crash of a vmwu that did not fsync.
          if (sizeOf(dest) === sizeOf(path)) continue;
          try {
            renameSync(path, dest);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
            throw new VmwuError('STORE', `${store.paths.tmp} and ${store.paths.blobs} are on different file systems`, 'keep the whole store (VMWU_HOME) on one file system');
          }
          moved.push(dest);
          added++;
        }
        if (moved.length) syncDirSync(store.blobs.dir);
        let base: Base;
        if (localBase) {
          base = localBase;
        } else {
          const { createdAt: _createdAt, ...row } = m.base;
          base = registerBase(store.db, { ...row, name: freeBaseName(store, m.base) });
        }
        const before = findUnit(store.db, `${m.unit.name}:${m.unit.version}`);
        const datasets: ImportResult['datasets'] = { added: [], present: [] };
        for (const d of m.datasets ?? []) datasets[insertDataset(store.db, d).existed ? 'present' : 'added'].push(formatDatasetRef(d));
        for (const l of m.layers) importLayer(store.db, l);
        // The unit's base field is the base's name in this store, which may differ from the bundle's.
        upsertUnit(store.db, m.unit.digest, { ...stripDigest(m.unit), base: base.name });
        // Just hashed: spare the first run from hashing them again.
        const now = new Date().toISOString();
        for (const d of moved) putSetting(store.db, `verified:sha256:${d.slice(d.lastIndexOf('/') + 1)}`, now);
        return {
          unit: `${m.unit.name}:${m.unit.version}`, digest: m.unit.digest,
          base: { name: base.name, digest: base.digest, imported: !localBase, ...(base.name !== m.base.name && !localBase ? { renamedFrom: m.base.name } : {}) },
          layers: m.layers.length,
          blobs: { total: m.blobs.length, added, present: m.blobs.length - added },
          bytes: o.bytes,
          changed: before?.digest !== m.unit.digest,
          datasets,
          missingData: (m.unit.data ?? []).filter((t) => !findDataset(store.db, parseDatasetRef(t, 'data'))),
        };
      } catch (e) {
        // Still under the lock: blobs moved in for a registration that failed go back out.
        for (const p of moved) rmSync(p, { force: true });
        throw e;
      }
    }).immediate();
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

function stripDigest(u: BundleManifest['unit']): UnitManifest {
  const { digest: _digest, ...rest } = u;
  return rest;
}
