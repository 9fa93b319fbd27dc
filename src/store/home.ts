import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Where the store is ($VMWU_HOME, else the XDG data directory) and where each of its parts lives in it. */

/** The store root: $VMWU_HOME, else the XDG data dir ($XDG_DATA_HOME/vmwu, ~/.local/share/vmwu). */
export function storeRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.VMWU_HOME) return resolve(env.VMWU_HOME);
  const data = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'vmwu');
}

export interface StorePaths {
  root: string;
  db: string;
  blobs: string;
  runs: string;
  cache: string;
  tmp: string;
  /** Checkpoints of running jobs: in the store, so that any host that sees it can go on with them. */
  checkpoints: string;
}

export function storePaths(root: string): StorePaths {
  return {
    root,
    db: join(root, 'vmwu.db'),
    blobs: join(root, 'blobs', 'sha256'),
    runs: join(root, 'runs'),
    cache: join(root, 'cache'),
    tmp: join(root, 'tmp'),
    checkpoints: join(root, 'checkpoints'),
  };
}
