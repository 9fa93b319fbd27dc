import { constants, copyFileSync, linkSync } from 'node:fs';
import { NO_LINK } from './durable.js';

/**
 * A hard link where the filesystem makes one, else a copy (across filesystems, or
 * where links are refused); `dest` must not exist, and a copy never follows what
 * stands there. Any other failure (no space, no access) is the caller's.
 */
export function linkOrCopySync(src: string, dest: string): void {
  try {
    linkSync(src, dest);
  } catch (e) {
    if (!NO_LINK.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
    copyFileSync(src, dest, constants.COPYFILE_EXCL);
  }
}
