import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadConfig } from '../config.js';
import { chownDirNoFollow, ensurePrivateDir } from '../store/private-dir.js';
import { openWayTo, qemuUser, type QemuUser } from '../vm/qemu-user.js';
import { openNodeDirs, shortSocketRoot } from './node-dirs.js';

/**
 * A private directory on this host for the unix sockets of a multi-VM job's
 * segment (its hub's, or one VM's link to a hub elsewhere): 0700, entered only by
 * vmwu and QEMU's user, in the node's instances dir unless its path is too long
 * for a socket. `use` gets it; whatever `use` throws, nothing is left.
 */

/** sun_path holds 108 bytes. */
const SOCKET_PATH_MAX = 100;

function dirFor(instances: string): string {
  const name = `segment-${randomBytes(6).toString('hex')}`;
  const inInstances = join(instances, name);
  return join(inInstances, 'vm-999.sock').length <= SOCKET_PATH_MAX ? inInstances : join(shortSocketRoot(), name);
}

export async function inSegmentDir<T>(storeRoot: string, use: (dir: string, user: QemuUser | undefined) => Promise<T>): Promise<T> {
  const config = await loadConfig(storeRoot);
  const dirs = openNodeDirs(config.scratch, storeRoot);
  const user = qemuUser();
  const dir = dirFor(dirs.instances);
  if (dirname(dir) !== dirs.instances) {
    ensurePrivateDir(dirname(dirname(dir)));
    ensurePrivateDir(dirname(dir));
  }
  mkdirSync(dir, { mode: 0o700 });
  try {
    if (user) {
      openWayTo(dirname(dirname(dir)), dirname(dir));
      chownDirNoFollow(dir, user.uid, user.gid);
    }
    return await use(dir, user);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
