import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { storePaths } from '../../store/home.js';

/**
 * Which stores a template serves. Templates live in a per-user node cache that
 * every store of the user on this host shares, and two stores with the same
 * base share one template (its key names blobs by digest). So a store's gc may
 * only judge a template by its own blobs when it is the template's only store:
 * each store that uses a template leaves a record in it, and a template goes
 * when none of its stores needs it any more.
 */

const DIR = 'stores';

function recordName(root: string): string {
  return createHash('sha256').update(resolve(root)).digest('hex').slice(0, 16);
}

/**
 * Notes that `storeRoot` uses the template in `dir`. Cheap when already noted:
 * jobs call it on every restore. Best effort: a cache whose disk is full still
 * serves the job, and a template missing a record is at worst made again.
 */
export function recordTemplateStore(dir: string, storeRoot: string): void {
  const path = join(dir, DIR, recordName(storeRoot));
  try {
    if (existsSync(path)) return;
    mkdirSync(join(dir, DIR), { recursive: true, mode: 0o700 });
    writeFileSync(path, `${resolve(storeRoot)}\n`, { mode: 0o600 });
  } catch {
    // See above.
  }
}

/** The stores recorded in a template; undefined for a template made before stores were recorded. */
export function templateStores(dir: string): string[] | undefined {
  const d = join(dir, DIR);
  if (!existsSync(d)) return undefined;
  return readdirSync(d).flatMap((n) => {
    try {
      const root = readFileSync(join(d, n), 'utf8').trim();
      return root && recordName(root) === n ? [root] : [];
    } catch {
      return [];
    }
  });
}

export function forgetTemplateStore(dir: string, storeRoot: string): void {
  rmSync(join(dir, DIR, recordName(storeRoot)), { force: true });
}

/** A store that no longer exists at its path: its database is gone. */
export function storeIsGone(root: string): boolean {
  return !existsSync(storePaths(root).db);
}

/**
 * Why a template is no longer needed by any of its stores, judged from `self`
 * (whose blobs `selfHasAll` tells); drops the records of stores that no longer
 * need it. Undefined while some store still does.
 */
export function templateUnneeded(dir: string, self: string, selfHasAll: boolean, o: { dryRun?: boolean } = {}): string | undefined {
  const stores = templateStores(dir);
  // Made before records were kept: only this store's blobs can say.
  if (!stores) return selfHasAll ? undefined : 'its unit or base is gone from the store';
  const me = resolve(self);
  const unneeded = stores.filter((s) => (s === me ? !selfHasAll : storeIsGone(s)));
  if (unneeded.length < stores.length) {
    if (!o.dryRun) for (const s of unneeded) forgetTemplateStore(dir, s);
    return undefined;
  }
  return stores.includes(me) ? 'its unit or base is gone from the store' : 'every store it was made for is gone';
}
