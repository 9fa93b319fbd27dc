import { openStore, type Store } from '../store/store.js';

/** Opens the store for one command and closes it however the command ends. */
export async function withStore<T>(fn: (store: Store) => Promise<T>): Promise<T> {
  const store = openStore();
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}
