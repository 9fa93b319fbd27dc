import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** The digest of a unit's files on disk (names, modes, link targets, contents) that goes into its build key, so that a changed file means a new build. */

/**
 * A digest of a file tree's names, modes, link targets and contents: the part of
 * a build's inputs that lives on disk, for the build cache key.
 */
export async function treeDigest(paths: string[]): Promise<string> {
  const h = createHash('sha256');
  const visit = async (path: string, rel: string): Promise<void> => {
    const st = await lstat(path);
    if (st.isDirectory()) {
      h.update(`d ${rel} ${st.mode & 0o777}\n`);
      for (const n of (await readdir(path)).sort()) await visit(join(path, n), `${rel}/${n}`);
    } else if (st.isSymbolicLink()) {
      h.update(`l ${rel} ${await readlink(path)}\n`);
    } else {
      const fh = createHash('sha256');
      await pipeline(createReadStream(path), fh);
      h.update(`f ${rel} ${st.mode & 0o777} ${fh.digest('hex')}\n`);
    }
  };
  for (const [i, p] of paths.entries()) await visit(p, String(i));
  return h.digest('hex');
}
