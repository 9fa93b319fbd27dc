import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, statSync } from 'node:fs';
import { chmod, chown, link, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { copyHashing, digestFile, hexOf, type Digest } from '../store/blobs.js';
import { getSetting, putSetting } from '../store/db.js';
import { NO_LINK, syncDir, syncFile } from '../store/durable.js';
import type { Store } from '../store/store.js';
import { openWayTo, type QemuUser } from '../vm/qemu-user.js';
import { isNoSpace, noSpaceError } from '../store/no-space.js';
import { withNodeLock } from './node-lock.js';
import { CacheFull, processCacheUse, touchBlob, type CacheUse } from './node-cache.js';

/**
 * The blobs a run boots from (a base's kernel, initrd and root, a unit's layers), found by digest and
 * verified: the store's own, or a copy in the node-local cache.
 */

/**
 * Where a run reads its base and layers from, by digest, each checked against its
 * digest before it is first used. Every blob of one source sits in one directory:
 * a qcow2 layer names its parent by file name.
 */
export interface BlobSource {
  path(digest: Digest): Promise<string>;
}

/** The store's own blobs, re-hashed once (the store remembers it), then trusted: they are read-only and content-named. */
export function storeBlobSource(store: Store): BlobSource {
  return {
    async path(d) {
      if (!store.blobs.has(d)) throw new VmwuError('BLOB_MISSING', `blob ${d} is missing from the store`, 'rebuild the base (vmwu base build …)');
      if (!getSetting(store.db, `verified:${d}`)) {
        await store.blobs.verify(d);
        putSetting(store.db, `verified:${d}`, new Date().toISOString());
      }
      return store.blobs.path(d);
    },
  };
}

/**
 * A cached blob is trusted by its name only if this user made it and nobody
 * else can have changed it since: a regular file of this user's that others
 * cannot write. The cache directory is private too (src/run/node-dirs.ts);
 * this holds even for a blob left there before it was.
 */
function ownCopy(path: string): boolean {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return false;
  }
  return st.isFile() && st.uid === process.geteuid?.() && (st.mode & 0o022) === 0;
}

/**
 * Read-only, and readable by nobody but this user and, when vmwu is root,
 * QEMU's user through its group: a cached blob a host's other users could read
 * would hand them the store's images.
 */
async function readableBy(path: string, user: QemuUser | undefined): Promise<void> {
  if (user) await chown(path, process.geteuid!(), user.gid);
  await chmod(path, user ? 0o440 : 0o400);
}

/**
 * A node-local copy of the store's blobs, for hosts that see the store over a
 * network filesystem (and for compute nodes, which never open its database), and
 * for a QEMU user that cannot reach the store. A blob is copied once per host,
 * hashed while it is copied and renamed into place only if it matches its
 * digest (fsynced first: a power loss never leaves a short copy under the
 * digest's name); the jobs on the host share it. One process copies a blob
 * while the others wait for it (a lock file naming the copier; a dead copier's
 * lock is broken). With `verified` (the store's own, already checked blobs, on this
 * host's disk) a blob is hard-linked instead when it can be: no bytes copied.
 * With `user`, that user can read the cache (not list it).
 *
 * The cache is capped and shared (src/run/node-cache.ts): every blob this source
 * hands out is held by `use` (default: the process's own use, held until it
 * ends), and a copy first makes room under the cap. When the cache cannot take a
 * blob (no room under the cap for what is not in use, or its filesystem is
 * full), this source reads the store's blobs from then on, each hashed first, and
 * says why in `use`'s notes (for a QEMU user that cannot reach the store, the
 * cache goes past its cap instead: there is no other way). From then on: a cached layer names its parent by
 * file name, so the parents must come first (resolveImage resolves a chain from
 * its base up) and what comes after must all come from the store.
 */
export function nodeBlobCache(storeBlobsDir: string, cacheDir: string,
  opts: { verified?: BlobSource; user?: QemuUser; use?: CacheUse; linkDir?: string } = {}): BlobSource & { dir: string } {
  const dir = join(cacheDir, 'blobs');
  // The store's blobs are <store>/blobs/sha256 (src/store/home.ts).
  const use = opts.use ?? processCacheUse(cacheDir, resolve(storeBlobsDir, '..', '..'));
  let fromStore: string | undefined;
  /** What this source handed out from the cache: a layer given later from elsewhere names its parent by file name there. */
  const given: Digest[] = [];
  /** Hard links of the store's verified blobs in `linkDir` (made once, QEMU's user may pass through it). */
  const linked = async (d: Digest): Promise<string> => {
    const to = join(opts.linkDir!, hexOf(d));
    if (!existsSync(to)) {
      mkdirSync(opts.linkDir!, { recursive: true, mode: 0o700 });
      if (opts.user) openWayTo(dirname(dirname(opts.linkDir!)), opts.linkDir!);
      await link(await opts.verified!.path(d), to);
      await readableBy(to, opts.user);
    }
    return to;
  };
  const copy = async (d: Digest, src: string, dest: string, overCap: boolean) => {
    const tmp = `${dest}.tmp-${randomBytes(4).toString('hex')}`;
    const name = `blobs/${hexOf(d)}`;
    try {
      if (opts.verified) {
        try {
          await link(await opts.verified.path(d), tmp);
          await readableBy(tmp, opts.user);
          await rename(tmp, dest);
          await syncDir(dir);
          return;
        } catch (e) {
          if (!NO_LINK.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
        }
      }
      const noRoom = overCap ? undefined : await use.makeRoom(name, statSync(src).blocks * 512);
      if (noRoom) throw new CacheFull(noRoom);
      const actual = await copyHashing(src, tmp);
      if (actual !== d) {
        throw new VmwuError('BLOB_CORRUPT', `blob ${d} in the store (${src}) is corrupt: its content hashes to ${actual}`,
          'remove it with `vmwu gc` and rebuild or re-import what used it');
      }
      await syncFile(tmp);
      await readableBy(tmp, opts.user);
      await rename(tmp, dest);
      await syncDir(dir);
    } finally {
      use.made(name);
      await rm(tmp, { force: true });
    }
  };
  /** The store's own blob, hashed first (the cache's copies are hashed as they are made). */
  const storeCopy = async (d: Digest, src: string): Promise<string> => {
    if (!existsSync(src)) throw new VmwuError('BLOB_MISSING', `blob ${d} is missing from the store (${src})`, 'the store must be visible on this host at the same path as where it was submitted');
    const actual = await digestFile(src);
    if (actual !== d) {
      throw new VmwuError('BLOB_CORRUPT', `blob ${d} in the store (${src}) is corrupt: its content hashes to ${actual}`,
        'remove it with `vmwu gc` and rebuild or re-import what used it');
    }
    return src;
  };
  return {
    dir,
    async path(d) {
      const hex = hexOf(d);
      const dest = join(dir, hex);
      const src = join(storeBlobsDir, hex);
      if (fromStore) return opts.verified ? linked(d) : storeCopy(d, src);
      const viaCache = async (overCap: boolean) => {
        // Held before it is looked for: no eviction takes it from under this job (src/run/node-cache.ts).
        await use.hold(`blobs/${hex}`);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        if (opts.user) openWayTo(dirname(cacheDir), dir);
        if (ownCopy(dest)) {
          touchBlob(dest);
          // A store closed to others since (src/store/privacy.ts) closed a hard-linked copy with it.
          if (opts.user) await readableBy(dest, opts.user);
          return dest;
        }
        if (!existsSync(src)) throw new VmwuError('BLOB_MISSING', `blob ${d} is missing from the store (${src})`, 'the store must be visible on this host at the same path as where it was submitted');
        return withNodeLock(join(dir, `.lock-${hex}`), () => (ownCopy(dest) ? dest : undefined), async () => {
          // Not this user's, or open to others' writes: not trusted by its name; copied (and hashed) again.
          await rm(dest, { force: true });
          await copy(d, src, dest, overCap);
          return dest;
        });
      };
      try {
        const p = await viaCache(false);
        given.push(d);
        return p;
      } catch (e) {
        if (!(e instanceof CacheFull || isNoSpace(e))) throw e;
        if (opts.verified) {
          // A QEMU user that cannot reach the store: past the cap rather than no job; on a full disk, hard links
          // of the store's blobs beside the job's instance (the parents of what the cache gave too), when that is the store's filesystem.
          let full = e;
          if (!isNoSpace(e)) {
            try {
              const p = await viaCache(true);
              given.push(d);
              use.note(`the node cache went past its cap: ${(e as Error).message}`);
              return p;
            } catch (again) {
              if (!isNoSpace(again)) throw again;
              full = again;
            }
          }
          if (!opts.linkDir) throw noSpaceError(full, { dir: cacheDir });
          try {
            for (const g of given) await linked(g);
            const p = await linked(d);
            fromStore = `the node cache's filesystem (${cacheDir}) is full: ${(full as Error).message}`;
            use.note(`blobs hard-linked from the store beside the job, not copied into the node cache: ${fromStore}`);
            return p;
          } catch (l) {
            throw NO_LINK.has((l as NodeJS.ErrnoException).code ?? '') ? noSpaceError(full, { dir: cacheDir }) : l;
          }
        }
        fromStore = e instanceof CacheFull ? e.message : `the node cache's filesystem (${cacheDir}) is full: ${(e as Error).message}`;
        use.note(`blobs read from the store, not the node cache: ${fromStore}`);
        return storeCopy(d, src);
      }
    },
  };
}
