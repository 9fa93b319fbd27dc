import { chmodSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A store and everything in it is private to its user (docs/security.md): its
 * database, logs, outputs and images are nobody else's to read, and the
 * dashboard is the way to share them. What vmwu creates from the moment a store
 * is opened is private by the process's umask (0700 directories, 0600 files;
 * files QEMU's user must read are handed to it explicitly), and a store that an
 * older vmwu left open to others is closed on its first open here.
 */

export const PRIVATE_UMASK = 0o077;

/**
 * Makes what this process creates private, and closes `root` if it is open to
 * others. Returns how many files and directories were closed (0 for a store
 * that was private already: one stat). The root is closed last, so an
 * interrupted pass runs again on the next open.
 */
export function makeStorePrivate(root: string): number {
  process.umask(PRIVATE_UMASK);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  if ((lstatSync(root).mode & 0o077) === 0) return 0;
  const me = process.geteuid?.();
  let closed = 0;
  const close = (path: string) => {
    const st = lstatSync(path);
    // Links have no mode of their own; what another user owns (QEMU's, in a store made by root) is theirs to keep.
    if (st.isSymbolicLink() || (me !== undefined && st.uid !== me)) return;
    if (st.isDirectory()) for (const name of readdirSync(path)) close(join(path, name));
    if (st.mode & 0o077) {
      chmodSync(path, st.mode & 0o7700);
      closed++;
    }
  };
  close(root);
  return closed;
}

/** Whether a store's root is closed to other users (what `vmwu doctor` reports). */
export function storeIsPrivate(root: string): boolean {
  return (lstatSync(root).mode & 0o077) === 0;
}
