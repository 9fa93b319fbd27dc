import type { Digest } from '../store/blobs.js';
import type { Db } from '../store/db.js';
import { imageLayerByDigest, imageLayerByKey, insertImageLayer } from '../store/image-layers.js';

/**
 * The store's records of layers and units: layers by digest and build key and a unit's chain of them,
 * and units registered, found by name and version, and removed.
 */

export interface Layer {
  digest: Digest;
  parent: Digest;
  baseDigest: Digest;
  kind: 'packages' | 'app' | 'image';
  packages: string[];
  key: string;
  size: number;
  createdAt: string;
}

interface LayerRow { digest: string; parent: string; base_digest: string; kind: string; packages: string; key: string; size: number; created_at: string }

const layerFromRow = (r: LayerRow): Layer => ({
  digest: r.digest as Digest, parent: r.parent as Digest, baseDigest: r.base_digest as Digest, kind: r.kind as Layer['kind'],
  packages: JSON.parse(r.packages) as string[], key: r.key, size: r.size, createdAt: r.created_at,
});

/**
 * Registers a layer; the same digest again is a no-op. Another digest under a key
 * already taken is refused (a UNIQUE error), never silently dropped: a unit
 * registered on a layer whose row was dropped would boot without it.
 */
export function insertLayer(db: Db, l: Omit<Layer, 'createdAt'>): Layer {
  const createdAt = new Date().toISOString();
  db.prepare(`INSERT INTO layers (digest, parent, base_digest, kind, packages, key, size, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`).run(l.digest, l.parent, l.baseDigest, l.kind, JSON.stringify(l.packages), l.key, l.size, createdAt);
  return { ...l, createdAt };
}

export function layerByKey(db: Db, key: string): Layer | undefined {
  const r = db.prepare('SELECT * FROM layers WHERE key = ?').get(key) as LayerRow | undefined;
  return r && layerFromRow(r);
}

export function layerByDigest(db: Db, digest: string): Layer | undefined {
  const r = db.prepare('SELECT * FROM layers WHERE digest = ?').get(digest) as LayerRow | undefined;
  return r && layerFromRow(r);
}

export function packageLayers(db: Db, baseDigest: string): Layer[] {
  return (db.prepare(`SELECT * FROM layers WHERE base_digest = ? AND kind = 'packages'`).all(baseDigest) as LayerRow[]).map(layerFromRow);
}

export function allLayers(db: Db): Layer[] {
  return (db.prepare('SELECT * FROM layers').all() as LayerRow[]).map(layerFromRow);
}

export function deleteLayer(db: Db, digest: string): void {
  db.prepare('DELETE FROM layers WHERE digest = ?').run(digest);
}

/** A container image's layer (src/store/image-layers.ts) as a link of a chain; its first layer is a base root, not a link. */
function imageLink(db: Db, digest: string): Layer | undefined {
  const l = imageLayerByDigest(db, digest);
  if (!l?.parent) return undefined;
  return { digest: l.digest, parent: l.parent, baseDigest: l.parent, kind: 'image', packages: [], key: l.key, size: l.size, createdAt: '' };
}

/** The chain from a top layer down to (not including) the base root, top first: a unit's layers, then its image's. */
export function layerChain(db: Db, top: string): Layer[] {
  const chain: Layer[] = [];
  let cur = layerByDigest(db, top) ?? imageLink(db, top);
  while (cur) {
    chain.push(cur);
    cur = layerByDigest(db, cur.parent) ?? imageLink(db, cur.parent);
  }
  return chain;
}

export interface UnitManifest {
  name: string;
  version: string;
  base: string;
  baseDigest: Digest;
  top: Digest;
  chain: Digest[];
  run: string[] | null;
  params: Record<string, { default: string; type: string }>;
  outputs: string[];
  resources: { memoryMiB?: number; cpus?: number; timeoutMs?: number; scratchBytes?: number; rootBytes?: number; nodes?: number };
  network: boolean;
  /** Datasets its jobs attach (NAME:VERSION), resolved to digests when they run. */
  data?: string[];
  /** A work-dir file its jobs read on stdin. */
  stdin?: string;
  /** CPU features it needs (vmwu.yaml `cpu:`); absent in units built before it could be stated. */
  cpu?: string[];
  buildKey: string;
  packages: string[];
  createdAt: string;
}

export interface UnitRecord extends UnitManifest {
  digest: Digest;
}

interface UnitRow { name: string; version: string; digest: string; manifest: string }

const unitFromRow = (r: UnitRow): UnitRecord => ({ ...(JSON.parse(r.manifest) as UnitManifest), digest: r.digest as Digest });

/** Registers (or re-tags) a unit in one statement. */
export function upsertUnit(db: Db, digest: Digest, m: UnitManifest): void {
  db.prepare(`INSERT INTO units (name, version, digest, base, base_digest, top, build_key, manifest, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (name, version) DO UPDATE SET digest = excluded.digest, base = excluded.base, base_digest = excluded.base_digest,
      top = excluded.top, build_key = excluded.build_key, manifest = excluded.manifest, created_at = excluded.created_at`)
    .run(m.name, m.version, digest, m.base, m.baseDigest, m.top, m.buildKey, JSON.stringify(m), m.createdAt);
}

export function unitByBuildKey(db: Db, key: string): UnitRecord | undefined {
  const r = db.prepare('SELECT * FROM units WHERE build_key = ? ORDER BY created_at DESC LIMIT 1').get(key) as UnitRow | undefined;
  return r && unitFromRow(r);
}

export function listUnits(db: Db): UnitRecord[] {
  return (db.prepare('SELECT * FROM units ORDER BY name, created_at DESC').all() as UnitRow[]).map(unitFromRow);
}

/** `name` (the newest version) or `name:version`. */
export function findUnit(db: Db, ref: string): UnitRecord | undefined {
  const i = ref.lastIndexOf(':');
  const r = (i > 0
    ? db.prepare('SELECT * FROM units WHERE name = ? AND version = ?').get(ref.slice(0, i), ref.slice(i + 1))
    : db.prepare('SELECT * FROM units WHERE name = ? ORDER BY created_at DESC LIMIT 1').get(ref)) as UnitRow | undefined;
  return r && unitFromRow(r);
}

export function deleteUnit(db: Db, name: string, version: string): boolean {
  return db.prepare('DELETE FROM units WHERE name = ? AND version = ?').run(name, version).changes > 0;
}

export function unitsUsingBase(db: Db, baseDigest: string): string[] {
  return (db.prepare('SELECT name, version FROM units WHERE base_digest = ?').all(baseDigest) as { name: string; version: string }[])
    .map((u) => `${u.name}:${u.version}`);
}

/**
 * Adds a layer that came from another store (an imported bundle), keeping its
 * creation time. When a local layer already holds its cache key with other content
 * (builds are not bit-for-bit reproducible), the local one keeps the key, so cache
 * hits stay local, and the imported row gets a key of its own: chains still resolve.
 */
export function importLayer(db: Db, l: Layer): 'added' | 'present' | 'rekeyed' {
  if (l.kind === 'image') {
    // A container image's layer: keyed by the image's own digests, so the same key means the same content.
    if (imageLayerByDigest(db, l.digest) || imageLayerByKey(db, l.key)) return 'present';
    insertImageLayer(db, { key: l.key, digest: l.digest, parent: l.parent, diffId: '', size: l.size });
    return 'added';
  }
  if (layerByDigest(db, l.digest)) return 'present';
  const taken = layerByKey(db, l.key);
  const key = taken ? `${l.key}@${l.digest}` : l.key;
  db.prepare(`INSERT INTO layers (digest, parent, base_digest, kind, packages, key, size, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(l.digest, l.parent, l.baseDigest, l.kind, JSON.stringify(l.packages), key, l.size, l.createdAt);
  return taken ? 'rekeyed' : 'added';
}
