import type { Digest } from './blobs.js';
import type { Db } from './db.js';

/**
 * The store's records of container image layers converted to qcow2 blobs (src/oci/convert.ts):
 * found by key, so images that share lower layers share them, and by digest.
 */

export interface ImageLayer {
  key: string;
  digest: Digest;
  /** The layer below; null for an image's first layer, which is a base's root. */
  parent: Digest | null;
  diffId: string;
  size: number;
}

interface Row { key: string; digest: string; parent: string | null; diff_id: string; size: number }
const fromRow = (r: Row): ImageLayer => ({ key: r.key, digest: r.digest as Digest, parent: r.parent as Digest | null, diffId: r.diff_id, size: r.size });

export function imageLayerByKey(db: Db, key: string): ImageLayer | undefined {
  const r = db.prepare('SELECT * FROM image_layers WHERE key = ?').get(key) as Row | undefined;
  return r && fromRow(r);
}

export function imageLayerByDigest(db: Db, digest: string): ImageLayer | undefined {
  const r = db.prepare('SELECT * FROM image_layers WHERE digest = ?').get(digest) as Row | undefined;
  return r && fromRow(r);
}

/** Records a converted layer; one already recorded under its key stays. Call inside the transaction that registers its base. */
export function insertImageLayer(db: Db, l: ImageLayer): void {
  db.prepare(`INSERT INTO image_layers (key, digest, parent, diff_id, size, created_at) VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (key) DO NOTHING`).run(l.key, l.digest, l.parent, l.diffId, l.size, new Date().toISOString());
}

export function allImageLayers(db: Db): (ImageLayer & { createdAt: string })[] {
  return (db.prepare('SELECT * FROM image_layers').all() as (Row & { created_at: string })[]).map((r) => ({ ...fromRow(r), createdAt: r.created_at }));
}

/** Forgets a converted layer (gc, once no base names it): a later pull converts it again. */
export function deleteImageLayer(db: Db, digest: string): void {
  db.prepare('DELETE FROM image_layers WHERE digest = ?').run(digest);
}
