import { join } from 'node:path';
import { guestDir } from '../paths.js';
import { runTool } from '../image/tool.js';

/**
 * The static helpers guests carry: the clone helper (what a guest restored for fast start needs done around its
 * job) and run-as (a container image's job runs as the image's USER).
 */

/**
 * Compiles guest/clone-helper.c (clock, RNG seed, disks and the tars' pipes of a
 * guest restored from a template) into a static binary for the guest's root:
 * static, because it runs in busybox-only roots with no C library.
 */
export async function compileCloneHelper(work: string): Promise<string> {
  // Named as it is in the guest (/vmwu/clone-helper): mmdebstrap's copy-in keeps the name.
  const out = join(work, 'clone-helper');
  await runTool('cc', ['-static', '-Os', '-s', '-o', out, join(guestDir, 'clone-helper.c')], {
    hint: 'install the Debian packages gcc and libc6-dev (scripts/setup.sh does): bases carry a small static helper for fast start',
  });
  return out;
}

/**
 * Compiles guest/run-as.c: a job on a container image runs as the image's USER,
 * found in the image's own passwd file. Static, for images without a C library.
 */
export async function compileRunAsHelper(work: string): Promise<string> {
  const out = join(work, 'run-as');
  await runTool('cc', ['-static', '-Os', '-s', '-o', out, join(guestDir, 'run-as.c')], {
    hint: 'install the Debian packages gcc and libc6-dev (scripts/setup.sh does): image bases carry a small static helper',
  });
  return out;
}
