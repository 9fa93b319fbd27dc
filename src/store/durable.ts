import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { copyFile, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Db } from './db.js';

/**
 * How vmwu makes a file survive a power loss whole or not at all. A rename is
 * atomic but not durable, and a file's data may reach the disk after its new
 * name does, so after a crash a name can point at an empty or short file. The
 * rule, for every file the store names (blobs, layers, results, attempt records):
 *
 *   1. write it under a temporary name in its final directory;
 *   2. fsync the file (its data is on the disk);
 *   3. rename it to its final name;
 *   4. fsync the directory (the name is on the disk).
 *
 * Only after step 4 may a database row, a `verified:` mark or a report name it.
 * Where many files land in one directory (an ingest of 10,000 reports), step 4 is
 * done once for the directory (DirSyncBatch), not once per file.
 */

/** Directory fsync is refused by some network filesystems; the rename is still atomic there. */
const DIR_SYNC_UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EBADF', 'EISDIR', 'EACCES', 'EPERM']);

/** Why a hard link fails where a copy works: another filesystem, or one without hard links. */
export const NO_LINK = new Set(['EXDEV', 'EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK', 'ENOSYS']);

/** The temporary name `writeFileDurableSync` and `copyFileDurableSync` write `dest` under: hidden, same directory, unique across hosts. */
export function tempPathFor(dest: string): string {
  return join(dirname(dest), `.${basename(dest)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Names made by tempPathFor. */
export const DURABLE_TEMP_NAME = /^\..+\.[0-9a-f]{12}\.tmp$/;

export function syncFileSync(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function syncFile(path: string): Promise<void> {
  const h = await open(path, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export function syncDirSync(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch (e) {
    if (DIR_SYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) return;
    throw e;
  }
  try {
    fsyncSync(fd);
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    closeSync(fd);
  }
}

export async function syncDir(dir: string): Promise<void> {
  let h;
  try {
    h = await open(dir, 'r');
  } catch (e) {
    if (DIR_SYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) return;
    throw e;
  }
  try {
    await h.sync();
  } catch (e) {
    if (!DIR_SYNC_UNSUPPORTED.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
  } finally {
    await h.close();
  }
}

export interface DurableWriteOptions {
  mode?: number;
  /** False when the caller fsyncs the directory itself, once for many files (DirSyncBatch). */
  dirSync?: boolean;
}

/** Writes a file whole: temporary name, fsync, rename, fsync of the directory. */
export function writeFileDurableSync(path: string, data: string | Uint8Array, o: DurableWriteOptions = {}): void {
  const tmp = tempPathFor(path);
  try {
    const fd = openSync(tmp, 'wx', o.mode ?? 0o600);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  if (o.dirSync !== false) syncDirSync(dirname(path));
}

/** Copies a file whole under `dest`, the same way. */
export function copyFileDurableSync(src: string, dest: string, o: DurableWriteOptions = {}): void {
  const tmp = tempPathFor(dest);
  try {
    copyFileSync(src, tmp);
    syncFileSync(tmp);
    renameSync(tmp, dest);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  if (o.dirSync !== false) syncDirSync(dirname(dest));
}

/**
 * writeFileDurableSync off the event loop: the fsyncs wait in libuv's threads,
 * so a process serving several VMs goes on with the others meanwhile.
 */
export async function writeFileDurable(path: string, data: string | Uint8Array, o: DurableWriteOptions = {}): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    const h = await open(tmp, 'wx', o.mode ?? 0o600);
    try {
      await h.writeFile(data);
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  if (o.dirSync !== false) await syncDir(dirname(path));
}

/** copyFileDurableSync off the event loop. */
export async function copyFileDurable(src: string, dest: string, o: DurableWriteOptions = {}): Promise<void> {
  const tmp = tempPathFor(dest);
  try {
    await copyFile(src, tmp);
    await syncFile(tmp);
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  if (o.dirSync !== false) await syncDir(dirname(dest));
}

/** Renames a finished file into place durably: its data first, then the name. */
export async function renameDurable(src: string, dest: string): Promise<void> {
  await syncFile(src);
  await rename(src, dest);
  await syncDir(dirname(dest));
}

/** Directories whose new entries must reach the disk, each fsynced once however many files landed in it. */
export class DirSyncBatch {
  private readonly dirs = new Set<string>();

  add(dir: string): void {
    this.dirs.add(dir);
  }

  flushSync(): void {
    for (const d of this.dirs) syncDirSync(d);
    this.dirs.clear();
  }
}

/**
 * Fsyncs every file and directory of a tree that was just written (an output
 * archive's extraction, a copied directory).
 * Up to `concurrency` at once: a journaling filesystem commits fsyncs that wait
 * together in one transaction, so 1,000 small outputs cost far less than 1,000
 * journal commits one after the other. Symlinks are entries of their directory.
 */
export async function syncTree(root: string, concurrency = 16): Promise<void> {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) files.push(p);
    }
    dirs.push(dir);
  };
  await walk(root);
  // The order does not matter: nothing names the tree before every sync has returned.
  await inParallel([...files.map((f) => () => syncFile(f)), ...dirs.map((d) => () => syncDir(d))], concurrency);
}

async function inParallel(tasks: (() => Promise<void>)[], n: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
}

/**
 * Runs `fn`, which commits, with SQLite's `synchronous = FULL`: the store runs
 * its WAL with NORMAL, where a commit can still be lost to a power loss after it
 * returned. Where files are removed or moved once a commit says so (gc unlinks
 * blobs whose rows it deleted; ingest moves reports it recorded), the commit must
 * reach the disk first, or a power loss could bring back rows naming files that
 * are gone.
 */
export function withFullSync<T>(db: Db, fn: () => T): T {
  const before = Number(db.pragma('synchronous', { simple: true }));
  db.pragma('synchronous = FULL');
  try {
    return fn();
  } finally {
    db.pragma(`synchronous = ${before}`);
  }
}
