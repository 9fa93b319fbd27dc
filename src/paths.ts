import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/**
 * Where vmwu's own files are (the package root and its guest/ directory, from src/ or dist/src/), and
 * the one test of whether a path lies inside a directory.
 */

/** The package root: the nearest directory above this file holding guest/ (works from src/ and dist/src/). */
function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'guest', 'agent'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('vmwu: cannot find the package root (guest/agent is missing)');
    dir = up;
  }
  return dir;
}

export const packageRoot = findRoot();
export const guestDir = join(packageRoot, 'guest');

/** Whether `child` (absolute, normalised) is `dir` or lies below it. Pure. */
export function isInside(dir: string, child: string): boolean {
  const d = dir.endsWith('/') ? dir : `${dir}/`;
  return child === dir || child.startsWith(d);
}
