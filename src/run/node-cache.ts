import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { formatBytes, parseSizeOrShare } from '../quantities.js';
import { mayBeActive, selfIdentity } from '../store/process-identity.js';
import { diskBytes, list } from '../store/temp-files.js';
import { cacheCap, planEviction, type CacheEntry, type CacheMax, type Cap } from './cache-cap.js';
import { forgetTemplateStore, recordTemplateStore, storeIsGone, templateStores } from './fast-start/template-stores.js';
import { NodeLockTimeout, withNodeLock } from './node-lock.js';

/**
 * This user's node cache (src/run/node-dirs.ts): node-local verified copies of
 * store blobs (`blobs/<hex>`) and fast-start templates (`templates/<key>`),
 * shared by every vmwu process of the user on the host, kept under a cap.
 *
 * - In use: a process that uses an entry holds it in its lease file
 *   (`leases/<its identity>`: the identity, then one `name reservedBytes` line
 *   per entry). A lease whose process is gone (src/store/process-identity.ts)
 *   holds nothing and is removed.
 * - Last use: a blob's access time, a template's record's modification time;
 *   both set when a job takes the entry.
 * - One lock (`.lock`, src/run/node-lock.ts) orders holding and evicting: a
 *   process takes its hold under the lock and only then looks for the entry;
 *   an evictor reads the leases and renames its victims away under the lock.
 *   So an entry is either found and held, or gone before it was looked for;
 *   never removed under a process that uses it. Victims are renamed into
 *   `trash/` (whole, at once: no reader sees half of one) and deleted after
 *   the lock is let go.
 * - Room: before an entry is made, its maker makes room for it under the cap
 *   (src/run/cache-cap.ts), evicting the least recently used, and reserves its
 *   bytes in its lease until it is made: two makers never both count on the
 *   same room.
 * - Stores: each store that uses the cache is recorded in `stores/`. Templates
 *   whose stores are all gone go at every eviction; the whole cache goes when
 *   every store it served is gone and no process holds anything in it.
 */

const LEASES = 'leases';
const TRASH = 'trash';
const LOCK = '.lock';
/** The lock is held for a directory listing and a few renames: a minute means its holder cannot be judged (another host's). */
const LOCK_WAIT_MS = 60_000;
const BLOB_NAME = /^[0-9a-f]{64}$/;
const TEMPLATE_NAME = /^[0-9a-f]{32}$/;

/** Why the cache could not take an entry: the job reads the store's blob instead, or boots. */
export class CacheFull extends Error {}

/** What live processes hold: entry names, and the bytes reserved for those being made. */
export interface Holds {
  names: Set<string>;
  reserved: Map<string, number>;
}

function leaseName(identity: string): string {
  return identity.replace(/[^A-Za-z0-9.-]/g, '_');
}

let myIdentity: string | undefined;
function me(): string {
  return (myIdentity ??= selfIdentity());
}

const open = new Map<string, NodeCache>();
let exitHook = false;

/** The cap's setting for a store's jobs: $VMWU_CACHE_MAX, else config.yaml `cache.max`. */
export async function cacheMaxSetting(storeRoot: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<{ max?: CacheMax; from?: string }> {
  if (env.VMWU_CACHE_MAX) return { max: parseSizeOrShare(env.VMWU_CACHE_MAX, '$VMWU_CACHE_MAX'), from: '$VMWU_CACHE_MAX' };
  if (!storeRoot) return {};
  const max = (await loadConfig(storeRoot)).cacheMax;
  return max ? { max, from: 'config.yaml cache.max' } : {};
}

export interface CacheState {
  dir: string;
  entries: (CacheEntry & { held: boolean })[];
  /** Bytes of entries nobody holds, and of what makers that died left. */
  reclaimableBytes: number;
  totalBytes: number;
  cap: Cap;
}

export class NodeCache {
  /** This process's cache at `dir` (one object per directory, so its holds are counted once). */
  static at(path: string): NodeCache {
    const dir = resolve(path);
    let c = open.get(dir);
    if (!c) {
      c = new NodeCache(dir);
      open.set(dir, c);
    }
    if (!exitHook) {
      exitHook = true;
      // A lease of a dead process holds nothing, but a clean exit leaves none behind.
      process.once('exit', () => {
        for (const x of open.values()) x.dropLease();
      });
    }
    return c;
  }

  private readonly holds = new Map<string, { count: number; reserve: number }>();
  private chain: Promise<unknown> = Promise.resolve();
  private readonly opened = new Set<string>();
  /** What this process's lease file says now: a count that changes no line is not written again. */
  private leaseText: string | undefined;

  private constructor(readonly dir: string) {}

  private get leaseFile(): string {
    return join(this.dir, LEASES, leaseName(me()));
  }

  /**
   * Runs `fn` holding the cache's lock: one at a time in this process, and
   * across processes by the lock file. A lock held too long (a holder this host
   * cannot judge) is CacheFull: the job goes on without the cache.
   */
  locked<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.chain.then(async () => {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      try {
        return await withNodeLock<{ v: T }>(join(this.dir, LOCK), () => undefined, async () => ({ v: await fn() }), { pollMs: 10, waitMs: LOCK_WAIT_MS });
      } catch (e) {
        if (e instanceof NodeLockTimeout) throw new CacheFull(`the node cache ${this.dir} is locked by ${e.owner} for over ${LOCK_WAIT_MS / 1000} s`);
        throw e;
      }
    }).then((r) => r.v);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * The cache opened for a store's jobs, once per process: when every store
   * it served is gone and nothing holds anything, it is emptied first; then
   * the store is recorded.
   */
  async openFor(store: string | undefined): Promise<void> {
    const key = store ?? '';
    if (this.opened.has(key)) return;
    const trash = await this.locked(() => {
      const stores = templateStores(this.dir);
      let moved: string[] = [];
      if (stores?.length && stores.every(storeIsGone) && this.readHolds().names.size === 0) {
        moved = ['blobs', 'templates'].flatMap((d) => this.moveToTrash(d) ?? []);
        for (const s of stores) forgetTemplateStore(this.dir, s);
      }
      if (store) recordTemplateStore(this.dir, store);
      return moved;
    });
    this.opened.add(key);
    await emptyTrash(trash);
  }

  /** Holds `name` for this process (counted): to be called under the lock, before the entry is looked for. Throws (a full disk) with nothing held. */
  holdLocked(name: string): void {
    const h = this.holds.get(name) ?? { count: 0, reserve: 0 };
    h.count++;
    this.holds.set(name, h);
    try {
      this.writeLease();
    } catch (e) {
      this.releaseOne(name);
      throw e;
    }
  }

  releaseOne(name: string): void {
    const h = this.holds.get(name);
    if (!h) return;
    if (--h.count <= 0) this.holds.delete(name);
    try {
      this.writeLease();
    } catch {
      // The lease keeps a hold it no longer needs: eviction is only more careful.
    }
  }

  private setReserve(name: string, bytes: number): void {
    const h = this.holds.get(name);
    if (!h || h.reserve === bytes) return;
    h.reserve = bytes;
    this.writeLease();
  }

  /** An entry made (or given up): its reservation is over, its bytes are on the disk. */
  made(name: string): void {
    try {
      this.setReserve(name, 0);
    } catch {
      // As in releaseOne.
    }
  }

  private writeLease(): void {
    const file = this.leaseFile;
    if (!this.holds.size) {
      rmSync(file, { force: true });
      this.leaseText = undefined;
      return;
    }
    // A sweep's jobs take and give back the same template hundreds of times: a
    // rename over the file each time costs the event loop ms (ext4 flushes a
    // file renamed over another). Written again when it is gone, though: a
    // process that judged this one dead (from another pid namespace sharing this
    // cache) may have removed it.
    const text = [me(), ...[...this.holds].map(([n, h]) => `${n} ${h.reserve}`)].join('\n') + '\n';
    if (text === this.leaseText && existsSync(file)) return;
    mkdirSync(join(this.dir, LEASES), { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp`;
    this.leaseText = undefined;
    writeFileSync(tmp, text, { mode: 0o600 });
    renameSync(tmp, file);
    this.leaseText = text;
  }

  private dropLease(): void {
    this.leaseText = undefined;
    try {
      rmSync(this.leaseFile, { force: true });
    } catch {
      // exiting anyway
    }
  }

  /** What every live process (this one too) holds; leases of dead processes are removed. */
  readHolds(): Holds {
    const names = new Set<string>();
    const reserved = new Map<string, number>();
    const dir = join(this.dir, LEASES);
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      return { names, reserved };
    }
    for (const f of files) {
      if (f.endsWith('.tmp')) {
        // Written and renamed at once by a live process: one this old is what a process that died between the two left.
        const st = statSync(join(dir, f), { throwIfNoEntry: false });
        if (st && Date.now() - st.mtimeMs > LOCK_WAIT_MS) rmSync(join(dir, f), { force: true });
        continue;
      }
      let lines: string[];
      try {
        lines = readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean);
      } catch {
        continue;
      }
      const identity = lines[0] ?? '';
      if (!identity || !mayBeActive(identity)) {
        rmSync(join(dir, f), { force: true });
        rmSync(join(dir, `${f}.tmp`), { force: true });
        continue;
      }
      for (const l of lines.slice(1)) {
        const [name, bytes] = l.split(' ');
        if (!name) continue;
        names.add(name);
        const n = Number(bytes);
        if (n > 0) reserved.set(name, Math.max(reserved.get(name) ?? 0, n));
      }
    }
    return { names, reserved };
  }

  /** The cache's entries, as they are on the disk now. */
  entries(): CacheEntry[] {
    const out: CacheEntry[] = [];
    for (const hex of list(join(this.dir, 'blobs'))) {
      if (!BLOB_NAME.test(hex)) continue;
      const st = lstatSync(join(this.dir, 'blobs', hex), { throwIfNoEntry: false });
      if (!st?.isFile()) continue;
      // A hard link to the store's blob frees nothing when it goes.
      out.push({ name: `blobs/${hex}`, bytes: st.nlink > 1 ? 0 : st.blocks * 512, usedMs: st.atimeMs });
    }
    for (const key of list(join(this.dir, 'templates'))) {
      if (!TEMPLATE_NAME.test(key)) continue;
      const dir = join(this.dir, 'templates', key);
      const used = statSync(join(dir, 'template.json'), { throwIfNoEntry: false }) ?? statSync(dir, { throwIfNoEntry: false });
      if (!used) continue;
      const stores = templateStores(dir);
      out.push({
        name: `templates/${key}`, bytes: diskBytes(dir), usedMs: used.mtimeMs,
        ...(stores?.length && stores.every(storeIsGone) ? { unneeded: 'every store it was made for is gone' } : {}),
      });
    }
    return out;
  }

  /** The cap in effect now, for entries that take `cacheBytes`. */
  cap(setting: { max?: CacheMax; from?: string }, cacheBytes: number): Cap {
    const s = statfsSync(this.dir);
    return cacheCap({ ...setting, fsBytes: s.blocks * s.bsize, freeBytes: s.bavail * s.bsize, cacheBytes });
  }

  /**
   * Makes room for `needBytes` more under the cap (entries no store needs go in
   * any case), evicting the least recently used entries no live process holds,
   * and reserves the bytes for `name` (which this process holds). Returns why
   * there is no room, or undefined. `needBytes` 0 and no name: a trim to the cap.
   */
  async makeRoom(name: string | undefined, needBytes: number, setting: { max?: CacheMax; from?: string }): Promise<string | undefined> {
    const { trash, why } = await this.locked(() => {
      const holds = this.readHolds();
      const entries = this.entries();
      const present = new Set(entries.map((e) => e.name));
      let reservedBytes = 0;
      for (const [n, b] of holds.reserved) if (n !== name && !present.has(n)) reservedBytes += b;
      const cap = this.cap(setting, entries.reduce((n, e) => n + e.bytes, 0));
      const plan = planEviction(entries, holds.names, { capBytes: cap.bytes, needBytes, reservedBytes });
      const trash = plan.victims.flatMap((v) => this.moveToTrash(v.name) ?? []);
      if (!plan.fits) {
        const held = entries.filter((e) => holds.names.has(e.name)).reduce((n, e) => n + e.bytes, 0);
        const inUse = `${formatBytes(held + reservedBytes)} of it is in use by running jobs`;
        return {
          trash, why: needBytes
            ? `the node cache ${this.dir} has no room for ${formatBytes(needBytes)} under its cap of ${formatBytes(cap.bytes)} (${cap.why}): ${inUse}`
            : `the node cache ${this.dir} holds ${formatBytes(plan.totalBytes)}, over its cap of ${formatBytes(cap.bytes)} (${cap.why}): ${inUse}`,
        };
      }
      if (name && needBytes > 0) this.setReserve(name, needBytes);
      return { trash, why: undefined };
    });
    await emptyTrash(trash);
    return why;
  }

  /** Renames an entry (or a whole part of the cache) into trash/; undefined when it was not there. */
  private moveToTrash(name: string): string | undefined {
    const to = join(this.dir, TRASH, `${name.replace(/\//g, '-')}-${randomBytes(4).toString('hex')}`);
    try {
      mkdirSync(join(this.dir, TRASH), { recursive: true, mode: 0o700 });
      renameSync(join(this.dir, name), to);
      return to;
    } catch {
      return undefined;
    }
  }

  /** Size, cap and what could be freed: for `vmwu doctor`. */
  async state(setting: { max?: CacheMax; from?: string }): Promise<CacheState> {
    return this.locked(() => {
      const holds = this.readHolds();
      const entries = this.entries().map((e) => ({ ...e, held: holds.names.has(e.name) }));
      const totalBytes = entries.reduce((n, e) => n + e.bytes, 0);
      const left = this.leftovers(holds).reduce((n, l) => n + diskBytes(l), 0);
      return {
        dir: this.dir, entries, totalBytes: totalBytes + left,
        reclaimableBytes: entries.filter((e) => !e.held).reduce((n, e) => n + e.bytes, 0) + left,
        cap: this.cap(setting, totalBytes),
      };
    });
  }

  /**
   * `vmwu gc --cache`: removes every entry no live process holds, and what
   * makers that died left behind. Returns what went and what stayed in use.
   */
  async empty(o: { dryRun?: boolean } = {}): Promise<{ removed: CacheEntry[]; leftoverBytes: number; inUse: CacheEntry[] }> {
    const { trash, removed, inUse, leftoverBytes } = await this.locked(() => {
      const holds = this.readHolds();
      const entries = this.entries();
      const removed = entries.filter((e) => !holds.names.has(e.name));
      const inUse = entries.filter((e) => holds.names.has(e.name));
      const left = this.leftovers(holds, true);
      const leftoverBytes = left.reduce((n, l) => n + diskBytes(l), 0);
      const trash = o.dryRun ? [] : [...removed.flatMap((e) => this.moveToTrash(e.name) ?? []), ...left];
      return { trash, removed, inUse, leftoverBytes };
    });
    await emptyTrash(trash);
    return { removed, inUse, leftoverBytes };
  }

  /** Removes what makers, copiers and evictors that died left behind (`vmwu gc`); its bytes. */
  async tidy(o: { dryRun?: boolean } = {}): Promise<number> {
    const left = await this.locked(() => this.leftovers(this.readHolds()));
    const bytes = left.reduce((n, l) => n + diskBytes(l), 0);
    if (!o.dryRun) await emptyTrash(left);
    return bytes;
  }

  /** What died makers, copiers and evictors left: temporary copies and templates, locks, trash. To be called under the lock. */
  private leftovers(holds: Holds, failed = false): string[] {
    const out: string[] = list(join(this.dir, TRASH)).map((n) => join(this.dir, TRASH, n));
    // A lock that is not there, or whose holder died: its work is over.
    const deadLock = (path: string) => {
      try {
        return !mayBeActive(readFileSync(path, 'utf8'));
      } catch (e) {
        return (e as NodeJS.ErrnoException).code === 'ENOENT';
      }
    };
    for (const n of list(join(this.dir, 'blobs'))) {
      const path = join(this.dir, 'blobs', n);
      const hex = /^(?:\.lock-)?([0-9a-f]{64})(?:\.tmp-[0-9a-f]{8})?$/.exec(n)?.[1];
      if (!hex || BLOB_NAME.test(n) || holds.names.has(`blobs/${hex}`)) continue;
      if (deadLock(n.startsWith('.lock-') ? path : join(this.dir, 'blobs', `.lock-${hex}`))) out.push(path);
    }
    for (const n of list(join(this.dir, 'templates'))) {
      const path = join(this.dir, 'templates', n);
      const key = /^([0-9a-f]{32})(?:\.(?:tmp|trash)-[0-9a-f]{8}|\.lock|\.failed)$/.exec(n)?.[1];
      // A failure marker delays the next try (src/run/fast-start/template.ts): only emptying the cache drops it.
      if (!key || holds.names.has(`templates/${key}`) || (n.endsWith('.failed') && !failed)) continue;
      if (deadLock(n.endsWith('.lock') ? path : join(this.dir, 'templates', `${key}.lock`))) out.push(path);
    }
    return out;
  }
}

async function emptyTrash(paths: string[]): Promise<void> {
  await Promise.all(paths.map((p) => rm(p, { recursive: true, force: true }).catch(() => undefined)));
}

/** Marks a blob of the cache used now (its access time; its modification time stays). */
export function touchBlob(path: string): void {
  try {
    const st = statSync(path);
    utimesSync(path, new Date(), st.mtime);
  } catch {
    // Only the eviction order suffers.
  }
}

/**
 * One job's (or one process's) use of the node cache: the entries it holds
 * until it is released, the cap its store sets, and notes on what the cache
 * could not do for it (recorded in the run's start record).
 */
export interface CacheUse {
  readonly cache: NodeCache;
  readonly store?: string;
  readonly notes: string[];
  /** Holds `name` (`blobs/<hex>`, `templates/<key>`) until release(); call before looking for the entry. */
  hold(name: string): Promise<void>;
  /** Makes room for an entry of about `bytes` that this use is about to make (it holds it already); why not, or undefined. */
  makeRoom(name: string, bytes: number): Promise<string | undefined>;
  /** The entry is made, or was given up: its reservation ends (the hold stays). */
  made(name: string): void;
  note(text: string): void;
  /** Runs `fn` (best effort) at release(): what the job made beside the cache goes with it. */
  atRelease(fn: () => void): void;
  release(): void;
}

/** A job's use of the cache at `dir` for `store`'s jobs: release() it when the job is over. */
export function cacheUse(dir: string, store?: string): CacheUse {
  const cache = NodeCache.at(dir);
  const held = new Set<string>();
  let setting: Promise<{ max?: CacheMax; from?: string }> | undefined;
  const notes: string[] = [];
  const cleanups: (() => void)[] = [];
  return {
    cache, store, notes,
    async hold(name) {
      if (held.has(name)) return;
      await cache.openFor(store);
      await cache.locked(() => cache.holdLocked(name));
      held.add(name);
    },
    async makeRoom(name, bytes) {
      setting ??= cacheMaxSetting(store);
      return cache.makeRoom(name, bytes, await setting);
    },
    made: (name) => cache.made(name),
    note(text) {
      if (!notes.includes(text)) notes.push(text);
    },
    atRelease: (fn) => cleanups.push(fn),
    release() {
      for (const n of held) cache.releaseOne(n);
      held.clear();
      for (const fn of cleanups.splice(0)) {
        try {
          fn();
        } catch {
          // best effort
        }
      }
    },
  };
}

const processUses = new Map<string, CacheUse>();

/**
 * The use of callers that keep no use of their own (a compute node's task, a
 * restore): it holds what it took until the process ends.
 */
export function processCacheUse(dir: string, store?: string): CacheUse {
  let u = processUses.get(resolve(dir));
  if (!u) {
    u = cacheUse(dir, store);
    processUses.set(resolve(dir), u);
  }
  return u;
}
