import { mkdirSync } from 'node:fs';
import { isVmwuError } from '../errors.js';
import { BlobStore } from './blobs.js';
import { openDb, type Db } from './db.js';
import { filesystemOf, type FsKind } from './fs-kind.js';
import { storePaths, storeRoot, type StorePaths } from './home.js';
import { acquireLease, describeLeaseHost, type LeaseOptions, type LeaseRecord, type StoreLease } from './lease.js';
import { makeStorePrivate } from './privacy.js';

/**
 * Opening the store for a process: its lease taken, its files made private, its database opened for
 * its filesystem, and everything closed safely at the end.
 */

/** The store: one SQLite database plus content-addressed blobs and per-run directories. */
export interface Store {
  paths: StorePaths;
  db: Db;
  blobs: BlobStore;
  /** The filesystem the store lives on; on a network one the database runs without shared memory. */
  fs: FsKind;
  /** This machine's hold on the store. */
  lease(): LeaseRecord;
  /** Files and directories this open closed to other users (a store an older vmwu left open: src/store/privacy.ts); 0 almost always. */
  closedToOthers: number;
  close(): void;
}

/**
 * Opens the store: takes the store lease for this machine (src/store/lease.ts),
 * then the database, in WAL mode on a local filesystem and in rollback-journal
 * mode on a network one, where WAL's shared memory does not exist. The lease is
 * renewed while the store is open, and every write through the database checks
 * first that this process still holds it (guardWrites in db.ts). If another
 * machine took it over (this process was stopped for longer than the TTL), that
 * write and every later one fail with STORE_LOST, and the database is closed, so
 * that nothing is written beside the new holder and nothing is lost silently.
 * `opts.lease` is a test seam.
 */
export function openStore(root: string = storeRoot(), opts: { lease?: LeaseOptions } = {}): Store {
  const paths = storePaths(root);
  const closedToOthers = makeStorePrivate(paths.root);
  for (const d of [paths.blobs, paths.runs, paths.cache, paths.tmp]) mkdirSync(d, { recursive: true });
  const fs = filesystemOf(paths.root);
  const lease: StoreLease = acquireLease(paths.root, opts.lease);
  let db: Db | undefined;
  // Not while a statement runs or a transaction is open (its rollback comes first):
  // then as soon as it is over.
  const closeWhenSafe = () => {
    if (!db?.open) return;
    if (!db.inTransaction) {
      try {
        db.close();
        return;
      } catch {
        // a statement is being iterated
      }
    }
    setTimeout(closeWhenSafe, 50).unref();
  };
  // Set once the database is open; the guard may find the lease lost before (while migrating).
  let timer: NodeJS.Timeout | undefined = undefined;
  const lost = () => {
    clearInterval(timer);
    closeWhenSafe();
  };
  const guard = () => {
    try {
      lease.assertWritable();
    } catch (e) {
      if (isVmwuError(e) && e.code === 'STORE_LOST') lost();
      throw e;
    }
  };
  try {
    db = openDb(paths.db, { network: fs.network, writeGuard: guard });
  } catch (e) {
    lease.release();
    throw e;
  }
  timer = setInterval(() => {
    let taker: string | null = null;
    try {
      taker = lease.renew();
    } catch {
      // a transient failure of the shared filesystem: the next heartbeat tries again
    }
    if (taker !== null) {
      process.stderr.write(`vmwu: the store ${paths.root} was taken over by ${describeLeaseHost(taker)}; its database is closed here, nothing more is written\n`);
      lost();
    }
  }, Math.max(1000, Math.floor(lease.ttlMs / 3)));
  timer.unref();
  return {
    paths, db, fs, blobs: new BlobStore(paths.blobs), lease: () => lease.record, closedToOthers,
    close: () => {
      clearInterval(timer);
      if (db?.open) db.close();
      lease.release();
    },
  };
}
