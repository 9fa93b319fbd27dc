import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Store } from '../store/store.js';

/**
 * Plans submitted from the dashboard. Each lands in a directory of its own under
 * `$VMWU_HOME/uploads/`, which becomes its experiment's plan root: `root:` copies
 * resolve inside it while the experiment runs, so a directory an experiment names
 * is kept for good. Any other one is litter from a submission that failed.
 */

/** `<ms since epoch>-<8 hex>`: only directories of this form are ever removed. */
const UPLOAD_NAME = /^\d{13,}-[0-9a-f]{8}$/;

/** Older than this, an unreferenced upload is no submission in progress (of this or another server on the store). */
export const STALE_UPLOAD_MS = 60 * 60 * 1000;

export function uploadsDir(store: Store): string {
  return join(store.paths.root, 'uploads');
}

export interface StagedUpload { dir: string; planPath: string }

/** Writes `text` as `fileName` (made `.pln`) in a new upload directory; nothing is left if that fails. */
export function stageUpload(store: Store, fileName: string, text: string): StagedUpload {
  const dir = join(uploadsDir(store), `${Date.now()}-${randomBytes(4).toString('hex')}`);
  const planPath = join(dir, fileName.endsWith('.pln') ? fileName : `${fileName}.pln`);
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(planPath, text);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { dir, planPath };
}

/**
 * Names of upload directories some experiment uses as its plan root. Matched by
 * the directory's own (unique) name under an `uploads` parent, not by full path,
 * so a store reached through another path or moved keeps its experiments' roots.
 */
function referencedUploads(store: Store): Set<string> {
  const rows = store.db.prepare('SELECT plan_root AS root FROM experiments').all() as { root: string }[];
  const names = new Set<string>();
  for (const { root } of rows) {
    const r = resolve(root);
    if (basename(dirname(r)) === 'uploads') names.add(basename(r));
  }
  return names;
}

/** Removes an upload directory unless an experiment uses it; true when removed. */
export function discardUpload(store: Store, dir: string): boolean {
  if (referencedUploads(store).has(basename(dir))) return false;
  rmSync(dir, { recursive: true, force: true });
  return true;
}

/**
 * Removes upload directories that no experiment uses and that are older than
 * `olderThanMs` (left by a server that crashed mid-submission). Younger ones may
 * belong to a submission still in progress. Best effort: one that cannot be
 * removed is left for the next start. Returns the removed paths.
 */
export function removeStaleUploads(store: Store, o: { olderThanMs?: number; now?: number } = {}): string[] {
  const root = uploadsDir(store);
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return [];
  }
  const cutoff = (o.now ?? Date.now()) - (o.olderThanMs ?? STALE_UPLOAD_MS);
  const used = referencedUploads(store);
  const removed: string[] = [];
  for (const name of entries) {
    if (!UPLOAD_NAME.test(name) || used.has(name)) continue;
    const p = join(root, name);
    try {
      if (lstatSync(p).mtimeMs > cutoff) continue;
      rmSync(p, { recursive: true, force: true });
      removed.push(p);
    } catch {
      // gone meanwhile, or not ours to remove: the next start tries again
    }
  }
  return removed;
}
