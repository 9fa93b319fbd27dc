import { dirname, join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { ensurePrivateDir } from '../store/private-dir.js';
import { isInside } from '../paths.js';

/**
 * Where this host keeps what only it uses: the instances' disks, pidfiles and
 * sockets (written by every guest write, so never on a shared filesystem) and a
 * cache of blobs by digest shared by the jobs on this host. Both live under the
 * first of:
 *   $VMWU_SCRATCH, config.yaml `scratch:`, $SLURM_TMPDIR (instances only: it is
 *   the job's, removed with it), $TMPDIR, /tmp
 * in a directory of this user's (`vmwu-<uid>`).
 */

export interface NodeDirs {
  instances: string;
  cache: string;
  /** Which setting chose the instances' directory, for messages. */
  from: string;
}

export function nodeDirs(configScratch: string | undefined, storeRoot: string, env: NodeJS.ProcessEnv = process.env): NodeDirs {
  const user = `vmwu-${process.getuid?.() ?? 'user'}`;
  const pick = (withSlurm: boolean): [string, string] => {
    if (env.VMWU_SCRATCH) return [env.VMWU_SCRATCH, '$VMWU_SCRATCH'];
    if (configScratch) return [configScratch, 'config.yaml scratch:'];
    if (withSlurm && env.SLURM_TMPDIR) return [env.SLURM_TMPDIR, '$SLURM_TMPDIR'];
    if (env.TMPDIR) return [env.TMPDIR, '$TMPDIR'];
    return ['/tmp', '/tmp'];
  };
  const [inst, from] = pick(true);
  const [cache] = pick(false);
  const dirs = { instances: resolve(inst, user, 'instances'), cache: resolve(cache, user, 'cache'), from };
  const root = resolve(storeRoot);
  for (const d of [dirs.instances, dirs.cache]) {
    if (isInside(root, d)) {
      throw new VmwuError('BAD_SCRATCH', `the node-local scratch directory ${d} (from ${from}) is inside the store ${root}`,
        'instances and the blob cache must live on each host\'s own disk: set `scratch:` in config.yaml, $VMWU_SCRATCH or $TMPDIR to a local directory');
    }
  }
  return dirs;
}

/**
 * nodeDirs, made: the per-user directories private to this user, checked
 * before anything in them is trusted (src/store/private-dir.ts), with
 * `instances` and `cache` inside.
 */
export function openNodeDirs(configScratch: string | undefined, storeRoot: string, env: NodeJS.ProcessEnv = process.env): NodeDirs {
  const dirs = nodeDirs(configScratch, storeRoot, env);
  for (const d of new Set([dirs.instances, dirs.cache])) {
    ensurePrivateDir(dirname(d));
    ensurePrivateDir(d);
  }
  return dirs;
}

/** `/tmp/vmwu-<uid>`: where an instance's sockets go when its scratch path is too long for a socket's name. */
export function shortSocketRoot(): string {
  return join('/tmp', `vmwu-${process.getuid?.() ?? 'user'}`, 's');
}

export function instanceDir(dirs: NodeDirs, id: string): string {
  return join(dirs.instances, id);
}
