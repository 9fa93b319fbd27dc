import { sameFilesystem, shortOfSpace, type FreeBytes, type SpaceNeed } from '../store/free-space.js';
import type { Store } from '../store/store.js';
import { EROFS_BLOCK, erofsImageBytes, type TreeStats } from './image-size.js';

/**
 * How a dataset's image will be made before mkfs.erofs runs (chunk-based to keep the files' holes, or
 * plain) and the disk space each step takes, for the free-space check.
 */

/**
 * Where mkfs.erofs 1.5 keeps the chunks of a chunk-based image while it writes it:
 * a tmpfile() in glibc's P_tmpdir, whatever TMPDIR says. It then copies them into
 * the image with copy_file_range, which fails (EXDEV, reported as EIO) when the
 * image is on another filesystem; so such an image is made on this one.
 */
export const MKFS_TMP = '/tmp';

export interface ImagePlan {
  /** `--chunksize` for a chunk-based image that keeps the files' holes; null for the plain layout. */
  chunkBytes: number | null;
  /** Made in a directory of its own under MKFS_TMP rather than in the store's temporary directory. */
  inMkfsTmp: boolean;
  /** About how big the image will be. */
  imageBytes: number;
  /** What will be written where, for the free-space check. */
  needs: SpaceNeed[];
  /** Files with holes that still get the plain layout, and why. */
  holesFilled?: string;
}

/**
 * How `vmwu data add` makes a dataset's image, and the space that takes: the image,
 * a single file's copy when it cannot be linked into the store, and the blob, which
 * is a rename on the image's filesystem and a copy on another. Files with holes get
 * a chunk-based image when mkfs.erofs has the room it needs for it; else the plain
 * layout, which writes every block.
 */
export function planImage(store: Store, source: string, isFile: boolean, t: TreeStats, free?: FreeBytes): ImagePlan {
  const what = `the dataset image of ${source}`;
  const staged: SpaceNeed = { dir: store.paths.tmp, bytes: isFile && !sameFilesystem(source, store.paths.tmp) ? t.allocatedBlocks * EROFS_BLOCK : 0, what: `a copy of ${source}` };
  const blob = (from: string, bytes: number): SpaceNeed[] => (sameFilesystem(from, store.blobs.dir) ? [] : [{ dir: store.blobs.dir, bytes, what: `its blob` }]);
  if (t.holes) {
    const imageBytes = erofsImageBytes(t, true);
    const inMkfsTmp = !sameFilesystem(store.paths.tmp, MKFS_TMP);
    const dir = inMkfsTmp ? MKFS_TMP : store.paths.tmp;
    const needs = [
      // mkfs.erofs's own copy of the chunks (one of each content) next to the image.
      { dir: MKFS_TMP, bytes: (t.allocatedBlocks + 1) * EROFS_BLOCK, what: `mkfs.erofs's copy of its chunks` },
      { dir, bytes: imageBytes, what }, staged, ...blob(dir, imageBytes),
    ];
    if (!shortOfSpace(needs, free)) return { chunkBytes: EROFS_BLOCK, inMkfsTmp, imageBytes, needs };
  }
  const imageBytes = erofsImageBytes(t, false);
  return {
    chunkBytes: null, inMkfsTmp: false, imageBytes,
    needs: [{ dir: store.paths.tmp, bytes: imageBytes, what }, staged, ...blob(store.paths.tmp, imageBytes)],
    ...(t.holes ? { holesFilled: `${MKFS_TMP} has too little space for mkfs.erofs to keep the holes` } : {}),
  };
}
