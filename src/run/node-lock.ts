import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { identityState, selfIdentity } from '../store/process-identity.js';

/**
 * Work that one process on a host does while the others wait for it (a blob copied into the node
 * cache, a template made), behind a lock file naming its holder.
 */

const LOCK_WAIT_MS = 200;

/**
 * Runs `fn` holding a lock file that names its holder, for work one process on
 * a host does while the others wait (copying a blob into the node cache, making
 * a template). A dead holder's lock is broken. `done()` is asked before every
 * try: once the work is there, a waiter returns without the lock or `fn`.
 * `pollMs`: how often a waiter looks again (locks held for milliseconds want it short).
 */
export async function withNodeLock<T>(lock: string, done: () => T | undefined, fn: () => Promise<T>, opts: { waitMs?: number; pollMs?: number } = {}): Promise<T> {
  const until = opts.waitMs === undefined ? Infinity : Date.now() + opts.waitMs;
  for (;;) {
    const there = done();
    if (there !== undefined) return there;
    try {
      writeFileSync(lock, selfIdentity(), { flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner: string;
      try {
        owner = readFileSync(lock, 'utf8');
      } catch {
        continue;
      }
      if (owner && identityState(owner) === 'dead') await rm(lock, { force: true });
      else if (Date.now() > until) throw new NodeLockTimeout(lock, owner);
      else await new Promise((r) => setTimeout(r, opts.pollMs ?? LOCK_WAIT_MS));
      continue;
    }
    try {
      return done() ?? (await fn());
    } finally {
      await rm(lock, { force: true });
    }
  }
}

export class NodeLockTimeout extends Error {
  constructor(readonly lock: string, readonly owner: string) {
    super(`${lock} is still held by ${owner}`);
  }
}
