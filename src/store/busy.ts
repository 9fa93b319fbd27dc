import { VmwuError } from '../errors.js';

/** A store database that another process keeps locked: how long a statement waits for it, and the STORE_BUSY error it then fails with. */

/** How long a statement waits for another process's write lock before it fails with STORE_BUSY. */
export const BUSY_TIMEOUT_MS = 10_000;

/**
 * SQLite's "database is locked" (SQLITE_BUSY: another connection held the lock past
 * the busy timeout) as a VmwuError; null for any other error. Recognised by name and
 * code, so the CLI's error report can use it without loading the SQLite module.
 */
export function storeBusy(err: unknown, doing: string): VmwuError | null {
  const e = err as { name?: unknown; code?: unknown } | null;
  if (e?.name !== 'SqliteError' || typeof e.code !== 'string' || !/^SQLITE_(BUSY|LOCKED)/.test(e.code)) return null;
  return new VmwuError('STORE_BUSY', `the store database is locked (${doing}): another process held its write lock for longer than ${BUSY_TIMEOUT_MS / 1000} s`,
    'another vmwu is writing to the store (creating a large sweep, or upgrading the schema); try again when it is done', { cause: err });
}
