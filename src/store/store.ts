import { mkdirSync } from 'node:fs';
import { BlobStore } from './blobs.js';
import { openDb, type Db } from './db.js';
import { filesystemOf, type FsKind } from './fs-kind.js';
import { storePaths, storeRoot, type StorePaths } from './home.js';
import { makeStorePrivate } from './privacy.js';
import { acquireLease, leaseTtlMs, type LeaseRecord, type StoreLease } from './lease.js';

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
 * renewed while the store is open; if another machine took it over (this process
 * was stopped for longer than the TTL), the database is closed, so that later
 * writes fail loudly instead of being lost.
 */
export function openStore(root: string = storeRoot()): Store {
  const paths = storePaths(root);
  const closedToOthers = makeStorePrivate(paths.root);
  for (const d of [paths.blobs, paths.runs, paths.cache, paths.tmp]) mkdirSync(d, { recursive: true });
  const fs = filesystemOf(paths.root);
  const lease: StoreLease = acquireLease(paths.root);
  let db: Db;
  try {
    db = openDb(paths.db, { network: fs.network });
  } catch (e) {
    lease.release();
    throw e;
  }
  const timer = setInterval(() => {
    let taker: string | null = null;
    try {
      taker = lease.renew();
    } catch {
      // a transient failure of the shared filesystem: the next heartbeat tries again
    }
    if (taker !== null) {
      clearInterval(timer);
      process.stderr.write(`vmwu: the store ${paths.root} was taken over by host ${taker}; its database is closed here, nothing more is written\n`);
      if (db.open) db.close();
    }
  }, Math.max(1000, Math.floor(leaseTtlMs() / 3)));
  timer.unref();
  return {
    paths, db, fs, blobs: new BlobStore(paths.blobs), lease: () => lease.record, closedToOthers,
    close: () => {
      clearInterval(timer);
      if (db.open) db.close();
      lease.release();
    },
  };
}
