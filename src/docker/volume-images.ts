import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeDatasetImage } from '../data/add.js';
import type { Digest } from '../store/blobs.js';
import type { Db } from '../store/db.js';
import type { Store } from '../store/store.js';
import { parseSize } from '../quantities.js';
import { VmwuError } from '../errors.js';
import { here } from '../store/process-identity.js';

/**
 * Read-only volumes without a copy per job, the way datasets are attached: a source
 * big enough to be worth it is made once into an erofs image (src/data/add.ts) and
 * attached read-only to every job that mounts it unchanged; a workflow whose scatter
 * steps all read one reference directory pays for it once. Small sources are copied
 * into the job's input disk as before: for them a copy costs less than an image.
 *
 * "Unchanged" is a fingerprint of the tree as stat sees it (names, types, modes,
 * sizes, inode numbers, change and modification times, link targets), as make and
 * rsync judge files; it is taken before and after the image is made, and an image
 * made while the source changed serves that job only. A path and its inodes are one
 * host's: when several hosts share the store, each row names the host that saw its
 * source, and only that host judges whether the source is gone or changed.
 */

/** Sources at least this big go as images (VMWU_DOCKER_VOLUME_IMAGE_MIN: a size, 0 for all, or `off`). */
export const VOLUME_IMAGE_MIN_DEFAULT = 16 * 1024 ** 2;

export function volumeImageMin(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.VMWU_DOCKER_VOLUME_IMAGE_MIN?.trim();
  if (!v) return VOLUME_IMAGE_MIN_DEFAULT;
  if (v === 'off') return undefined;
  // 0: every read-only volume goes as an image.
  if (v === '0') return 0;
  try {
    return parseSize(v, 'VMWU_DOCKER_VOLUME_IMAGE_MIN');
  } catch (e) {
    throw new VmwuError('BAD_SETTING', (e as Error).message, 'give a size such as 64M, or off to copy every volume');
  }
}

export interface TreeFingerprint {
  digest: string;
  /** Bytes of its regular files. */
  bytes: number;
}

/** The fingerprint of a file or directory tree; no file's content is read. */
export function fingerprintTree(path: string): TreeFingerprint {
  const h = createHash('sha256');
  let bytes = 0;
  const entry = (rel: string, st: Stats, abs: string) => {
    const link = st.isSymbolicLink() ? readlinkSync(abs) : '';
    h.update(JSON.stringify([rel, st.mode, st.size, st.ino, st.dev, st.mtimeMs, st.ctimeMs, link]));
    h.update('\n');
    if (st.isFile()) bytes += st.size;
  };
  const walk = (abs: string, rel: string) => {
    const st = lstatSync(abs);
    entry(rel, st, abs);
    if (st.isDirectory()) for (const name of readdirSync(abs).sort()) walk(join(abs, name), `${rel}/${name}`);
  };
  walk(resolve(path), '.');
  return { digest: h.digest('hex'), bytes };
}

interface VolumeImageRow { fingerprint: string; digest: string }

/**
 * The image to attach for a read-only volume's source, or undefined when it should
 * be copied (too small, or images turned off). Made now when there is none.
 */
export async function volumeImage(store: Store, source: string, min: number | undefined): Promise<{ digest: Digest; made: boolean } | undefined> {
  if (min === undefined) return undefined;
  const before = fingerprintTree(source);
  if (before.bytes < min) return undefined;
  const now = new Date().toISOString();
  const row = store.db.prepare('SELECT fingerprint, digest FROM volume_images WHERE fingerprint = ?').get(before.digest) as VolumeImageRow | undefined;
  if (row && store.blobs.has(row.digest as Digest)) {
    store.db.prepare('UPDATE volume_images SET used_at = ? WHERE fingerprint = ?').run(now, row.fingerprint);
    return { digest: row.digest as Digest, made: false };
  }
  const made = await makeDatasetImage(store, source);
  if (fingerprintTree(source).digest === before.digest) {
    store.db.prepare('INSERT OR REPLACE INTO volume_images (fingerprint, source, host, digest, bytes, used_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(before.digest, resolve(source), here().host, made.digest, made.imageBytes, now);
  }
  return { digest: made.digest, made: true };
}

/** Volume images not used for this long are forgotten by gc, and their blobs go with the next gc's plan. */
export const VOLUME_IMAGE_UNUSED_MS = 7 * 24 * 3600 * 1000;

/**
 * Forgets the images that no job used for VOLUME_IMAGE_UNUSED_MS, and those of this
 * host's sources that are gone or changed; gc then removes their blobs as unused.
 */
export function pruneVolumeImages(db: Db, o: { dryRun?: boolean; nowMs?: number } = {}): { source: string; bytes: number; why: string }[] {
  const now = o.nowMs ?? Date.now();
  const self = here().host;
  const rows = db.prepare('SELECT fingerprint, source, host, bytes, used_at FROM volume_images').all() as { fingerprint: string; source: string; host: string; bytes: number; used_at: string }[];
  const stale: { source: string; bytes: number; why: string }[] = [];
  for (const r of rows) {
    let why: string | undefined;
    if (now - Date.parse(r.used_at) > VOLUME_IMAGE_UNUSED_MS) why = 'unused for 7 days';
    else if (r.host === self) {
      try {
        if (fingerprintTree(r.source).digest !== r.fingerprint) why = 'its source changed';
      } catch {
        why = 'its source is gone';
      }
    }
    if (!why) continue;
    stale.push({ source: r.source, bytes: r.bytes, why });
    if (!o.dryRun) db.prepare('DELETE FROM volume_images WHERE fingerprint = ?').run(r.fingerprint);
  }
  return stale;
}
