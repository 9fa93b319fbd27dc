import { noSpaceError } from '../store/no-space.js';
import { openStore, type Store } from '../store/store.js';

/** How every command reaches the store: opened for that command alone, closed however it ends, and a full disk reported against it. */

/**
 * Opens the store for one command and closes it however the command ends. A full
 * disk, wherever the command met it, is reported as NO_SPACE naming the store.
 */
export async function withStore<T>(fn: (store: Store) => Promise<T>): Promise<T> {
  const store = openStore();
  if (store.closedToOthers) {
    process.stderr.write(`vmwu: the store ${store.paths.root} was open to other users; ${store.closedToOthers} files and directories in it are now private to you (share results with \`vmwu serve\`)\n`);
  }
  try {
    return await fn(store);
  } catch (e) {
    throw noSpaceError(e, { dir: store.paths.root, store: store.paths.root });
  } finally {
    store.close();
  }
}
