import { VmwuError } from '../errors.js';
import type { Digest } from '../store/blobs.js';
import type { Db } from '../store/db.js';
import { formatDatasetRef, parseDatasetRef, type DatasetRef } from './ref.js';

/**
 * The store's records of datasets: each name and version with its image's digest, registered once per
 * content, and the datasets a job attaches resolved to digests.
 */

/** A registered dataset: a read-only erofs image in the blob store, by digest, under a name and version. */
export interface Dataset extends DatasetRef {
  digest: Digest;
  format: 'erofs';
  /** Bytes of the image (what a job's disk reads) and of the files it holds. */
  imageBytes: number;
  contentBytes: number;
  files: number;
  /** The path it was made from, for the record. */
  source: string;
  createdAt: string;
}

interface Row {
  name: string; version: string; digest: string; format: string; image_bytes: number; content_bytes: number; files: number; source: string; created_at: string;
}

const fromRow = (r: Row): Dataset => ({
  name: r.name, version: r.version, digest: r.digest as Digest, format: 'erofs', imageBytes: r.image_bytes, contentBytes: r.content_bytes, files: r.files,
  source: r.source, createdAt: r.created_at,
});

export function findDataset(db: Db, ref: DatasetRef): Dataset | undefined {
  const r = db.prepare('SELECT * FROM datasets WHERE name = ? AND version = ?').get(ref.name, ref.version) as Row | undefined;
  return r && fromRow(r);
}

export function requireDataset(db: Db, ref: DatasetRef): Dataset {
  const d = findDataset(db, ref);
  if (d) return d;
  const versions = (db.prepare('SELECT version FROM datasets WHERE name = ? ORDER BY created_at').all(ref.name) as { version: string }[]).map((v) => v.version);
  throw new VmwuError('NO_DATASET', `no dataset ${formatDatasetRef(ref)}`,
    versions.length ? `${ref.name} has the versions ${versions.join(', ')}` : `add it with \`vmwu data add PATH --name ${ref.name}\`; see \`vmwu data list\``);
}

export function listDatasets(db: Db): Dataset[] {
  return (db.prepare('SELECT * FROM datasets ORDER BY name, created_at').all() as Row[]).map(fromRow);
}

/**
 * Registers a dataset whose blob is in the store. The same name and version
 * with the same image is a no-op; with another image it is refused: a version
 * names one content, or results made with it would lie.
 */
export function insertDataset(db: Db, d: Dataset): { dataset: Dataset; existed: boolean } {
  return db.transaction(() => {
    const known = findDataset(db, d);
    if (known) {
      if (known.digest === d.digest) return { dataset: known, existed: true };
      throw new VmwuError('DATASET_EXISTS', `dataset ${formatDatasetRef(d)} exists with other content (${known.digest.slice(7, 19)}, from ${known.source})`,
        `give another version (--name ${d.name}:2), or remove the old one first: vmwu data rm ${formatDatasetRef(d)}`);
    }
    db.prepare(`INSERT INTO datasets (name, version, digest, format, image_bytes, content_bytes, files, source, created_at)
      VALUES (@name, @version, @digest, @format, @imageBytes, @contentBytes, @files, @source, @createdAt)`).run(d);
    return { dataset: d, existed: false };
  }).immediate();
}

/**
 * The datasets a job attaches, as name and digest: a unit's `data:` and then
 * `--data` (the latter wins for the same name). Each must be registered.
 */
export function resolveDatasetRefs(db: Db, refs: string[], where = '--data'): { name: string; digest: Digest }[] {
  const byName = new Map<string, Digest>();
  for (const text of refs) {
    const ref = parseDatasetRef(text, where);
    byName.set(ref.name, requireDataset(db, ref).digest);
  }
  return [...byName].map(([name, digest]) => ({ name, digest }));
}

export function removeDataset(db: Db, ref: DatasetRef): boolean {
  return db.prepare('DELETE FROM datasets WHERE name = ? AND version = ?').run(ref.name, ref.version).changes > 0;
}
