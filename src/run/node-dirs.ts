import { join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { isInside } from '../sweep/confine.js';

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

export function instanceDir(dirs: NodeDirs, id: string): string {
  return join(dirs.instances, id);
}
