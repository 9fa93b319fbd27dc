import { formatBytes, type SizeOrShare } from '../quantities.js';

/**
 * How big this user's node cache (src/run/node-cache.ts) may grow, and which of
 * its entries go when it would grow past that. Pure.
 */

/** `cache: {max: …}` or $VMWU_CACHE_MAX: a size (20G) or a share of the cache's filesystem (10%). */
export type CacheMax = SizeOrShare;

/** The cap when none is set: this share of the filesystem the cache is on. */
export const DEFAULT_CACHE_SHARE = 0.1;

/**
 * What the cache leaves free on its filesystem, whatever its cap: 5 % of the
 * filesystem, at least 16 MiB and at most 2 GiB. Other users' caches, the
 * instances' disks and /tmp's other users need room too.
 */
export function cacheMargin(fsBytes: number): number {
  return Math.round(Math.min(2 * 1024 ** 3, Math.max(16 * 1024 ** 2, fsBytes * 0.05)));
}

export interface CapInput {
  /** The cap asked for, if any, and which setting asked it (for messages). */
  max?: CacheMax;
  from?: string;
  /** The size of the filesystem the cache is on, its free bytes (for this user), and what the cache holds on it now. */
  fsBytes: number;
  freeBytes: number;
  cacheBytes: number;
}

export interface Cap {
  bytes: number;
  /** Where the cap comes from, for messages: "$VMWU_CACHE_MAX", "10 % of its filesystem", "its filesystem's free space …". */
  why: string;
}

/**
 * The cap in effect: the one asked for (or DEFAULT_CACHE_SHARE of the
 * filesystem), but never more than the cache holds now plus the filesystem's
 * free space less cacheMargin: a cache may only grow into room that is there.
 */
export function cacheCap(i: CapInput): Cap {
  const asked = i.max ? ('bytes' in i.max ? i.max.bytes : Math.floor(i.max.share * i.fsBytes)) : Math.floor(DEFAULT_CACHE_SHARE * i.fsBytes);
  const askedWhy = i.max ? `${i.from ?? 'set'}${'share' in i.max ? ` (${Math.round(i.max.share * 1000) / 10} % of its filesystem)` : ''}` : `${DEFAULT_CACHE_SHARE * 100} % of its filesystem`;
  const margin = cacheMargin(i.fsBytes);
  const room = Math.max(0, i.cacheBytes + i.freeBytes - margin);
  if (room < asked) return { bytes: room, why: `its filesystem has ${formatBytes(i.freeBytes)} free, less a margin of ${formatBytes(margin)}` };
  return { bytes: asked, why: askedWhy };
}

/** One entry of the cache: `blobs/<hex>` or `templates/<key>`. */
export interface CacheEntry {
  name: string;
  /** What removing it frees (0 for a blob hard-linked to the store's: its bytes stay). */
  bytes: number;
  /** When a job last used it (ms since the epoch). */
  usedMs: number;
  /** Why no store needs it any more (a template whose stores are all gone): it goes first, whatever the cap. */
  unneeded?: string;
}

export interface EvictionPlan {
  /** What to remove, in order: the unneeded, then the least recently used. */
  victims: CacheEntry[];
  /** Whether `needBytes` more fit under the cap once the victims are gone. */
  fits: boolean;
  /** What the cache holds once they are (entries and reservations). */
  totalBytes: number;
}

/**
 * Which entries to remove so that `needBytes` more fit under `capBytes`:
 * entries no store needs first, then the least recently used, never one in
 * `held` (a live process uses it). `reservedBytes`: what entries being made now
 * will take. When even removing every entry not held would not make room, only
 * the unneeded go: the others would be lost for nothing (a trim, with nothing
 * to insert, still removes what it can).
 */
export function planEviction(entries: readonly CacheEntry[], held: ReadonlySet<string>, o: { capBytes: number; needBytes: number; reservedBytes?: number }): EvictionPlan {
  const sum = (es: readonly CacheEntry[]) => es.reduce((n, e) => n + e.bytes, 0);
  const free = entries.filter((e) => !held.has(e.name));
  const unneeded = free.filter((e) => e.unneeded);
  let total = sum(entries) + (o.reservedBytes ?? 0) - sum(unneeded);
  const lru = free.filter((e) => !e.unneeded && e.bytes > 0).sort((a, b) => a.usedMs - b.usedMs || a.name.localeCompare(b.name));
  const more: CacheEntry[] = [];
  for (const e of lru) {
    if (total + o.needBytes <= o.capBytes) break;
    more.push(e);
    total -= e.bytes;
  }
  // A trim (nothing to insert) gets as close to the cap as it can.
  if (total + o.needBytes <= o.capBytes || o.needBytes === 0) return { victims: [...unneeded, ...more], fits: total + o.needBytes <= o.capBytes, totalBytes: total };
  return { victims: unneeded, fits: false, totalBytes: total + sum(more) };
}
