import { mkdirSync } from 'node:fs';
import { BlobStore } from './blobs.js';
import { openDb, type Db } from './db.js';
import { storePaths, storeRoot, type StorePaths } from './home.js';

/** The store: one SQLite database plus content-addressed blobs and per-run directories. */
export interface Store {
  paths: StorePaths;
  db: Db;
  blobs: BlobStore;
  close(): void;
}

export function openStore(root: string = storeRoot()): Store {
  const paths = storePaths(root);
  for (const d of [paths.root, paths.blobs, paths.runs, paths.cache, paths.tmp]) mkdirSync(d, { recursive: true });
  const db = openDb(paths.db);
  return { paths, db, blobs: new BlobStore(paths.blobs), close: () => db.close() };
}
