import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type RunningServer } from '../../src/server/index.js';
import { registerBase } from '../../src/store/bases.js';
import type { Digest } from '../../src/store/blobs.js';
import { openStore, type Store } from '../../src/store/store.js';

/**
 * The dashboard's server over a store of its own, for API tests that boot no
 * VM: a base named `fake` (blobs that do not exist) to make experiments of, and
 * a page that carries the CSRF token.
 */

export const fakeDigest = (c: string) => `sha256:${c.repeat(64)}` as Digest;

export const TOKEN = 'tok-0123456789abcdef';
export const auth = { authorization: `Bearer ${TOKEN}` };

/** A temporary dir holding a store with the `fake` base. */
export function fakeStore(prefix: string): { dir: string; store: Store } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const store = openStore(join(dir, 'store'));
  const d = fakeDigest;
  registerBase(store.db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
  return { dir, store };
}

/** The server over `store`, its web dir in `dir` (with `webFiles` besides the page); workers are not started but named to `spawnWorker`. */
export function startApiServer(store: Store, dir: string, o: { webFiles?: Record<string, string>; spawnWorker?: (name: string) => void } = {}): Promise<RunningServer> {
  const web = join(dir, 'web');
  mkdirSync(web);
  writeFileSync(join(web, 'index.html'), '<meta name="csrf-token" content="__CSRF__">');
  for (const [name, text] of Object.entries(o.webFiles ?? {})) writeFileSync(join(web, name), text);
  return startServer(store, { token: TOKEN, webDir: web, tickMs: 50, spawnWorker: (_s, name) => { o.spawnWorker?.(name); return 4242; } });
}
