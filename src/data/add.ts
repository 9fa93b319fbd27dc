import { constants, accessSync, chmodSync, copyFileSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { runTool } from '../image/tool.js';
import { checkFreeSpace, type FreeBytes } from '../store/free-space.js';
import { copyFileSparse } from '../store/sparse-copy.js';
import type { Store } from '../store/store.js';
import { makeWorkDir } from '../store/temp-files.js';
import { MKFS_TMP, planImage } from './image-plan.js';
import { addFile, emptyTreeStats, type TreeStats } from './image-size.js';
import { insertDataset, type Dataset } from './records.js';
import type { DatasetRef } from './ref.js';
import type { Digest } from '../store/blobs.js';

/**
 * `vmwu data add PATH --name NAME[:VERSION]`: a file or directory made once
 * into a read-only erofs image, stored as a blob by its digest, and registered.
 * Jobs attach the image itself, read-only: nothing is copied per job.
 *
 * erofs, not squashfs or ext4: the guest kernel (Debian's cloud kernel) ships
 * it; it is made for read-only images (compact metadata, no journal, nothing to
 * replay or check at mount); uncompressed, a read is a plain block read, which
 * matters most under TCG where decompressing costs guest CPU.
 *
 * Sparse files keep their holes: when a file has some, the image is chunk-based
 * (`--chunksize`, 4 KiB chunks; Linux reads those since 5.15, the guest's 6.1
 * included), where an all-zero chunk is stored once, so a 300 MiB file of 12 KiB
 * data makes an image of some 300 KiB (its chunk index) rather than 300 MiB. Files
 * without holes keep the plain layout, so their images, and digests, are the ones
 * vmwu always made. The same files make the same image: the layout follows the
 * files (a dense copy of a sparse file gets the plain one), except that the plain
 * one is the fallback when mkfs.erofs lacks room in /tmp (src/data/image-plan.ts).
 *
 * What it will write is estimated first and checked against the free space, so
 * that a disk too small refuses the dataset before anything is written.
 */

export interface AddDatasetOptions {
  progress?(step: string, done: number, total: number): void;
  /** Free bytes on a path's filesystem; statfs by default (tests give a small number). */
  freeBytes?: FreeBytes;
}

/**
 * Every entry readable (directories searchable), no sockets or devices: said now,
 * with the path, rather than by mkfs.erofs halfway. Counts what the image's size
 * depends on (src/data/image-size.ts).
 */
export function scanTree(path: string, acc: TreeStats = emptyTreeStats()): TreeStats {
  const st = lstatSync(path);
  acc.entries++;
  acc.nameBytes += Buffer.byteLength(basename(path));
  if (st.isSymbolicLink()) {
    acc.nameBytes += st.size;
    return acc;
  }
  if (st.isDirectory()) {
    try {
      accessSync(path, constants.R_OK | constants.X_OK);
    } catch {
      throw new VmwuError('DATA_UNREADABLE', `${path}: directory is not readable`, 'fix its permissions, or leave it out of the dataset');
    }
    acc.dirs++;
    for (const e of readdirSync(path)) scanTree(join(path, e), acc);
    return acc;
  }
  if (!st.isFile()) throw new VmwuError('DATA_UNSUPPORTED', `${path}: a ${st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : 'device'} cannot go into a dataset`, 'datasets hold files, directories and symbolic links');
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new VmwuError('DATA_UNREADABLE', `${path}: file is not readable`, 'fix its permissions, or leave it out of the dataset');
  }
  addFile(acc, st.size, st.blocks * 512);
  return acc;
}

/**
 * A single file goes into a directory of its own (mkfs.erofs takes a directory):
 * linked where it can be, else cloned, else copied with its holes kept.
 */
function stageFile(file: string, dir: string): string {
  mkdirSync(dir);
  // The image records this directory's mode as its root's: the same whatever the umask (a store's is 077), or the same file would make another digest.
  chmodSync(dir, 0o755);
  const dest = join(dir, basename(file));
  try {
    linkSync(file, dest);
  } catch {
    try {
      copyFileSync(file, dest, constants.COPYFILE_FICLONE_FORCE);
    } catch {
      copyFileSparse(file, dest);
    }
  }
  return dir;
}

/** An erofs image of a file or directory, stored as a blob: what a dataset is made of. */
export interface DatasetImage {
  digest: Digest;
  imageBytes: number;
  counted: TreeStats;
  source: string;
}

/**
 * Makes the erofs image of `path` and stores it by digest (src/data/add.ts top):
 * checked first, then made in a work dir, then moved in. Registers nothing.
 */
export async function makeDatasetImage(store: Store, path: string, o: AddDatasetOptions = {}): Promise<DatasetImage> {
  const source = resolve(path);
  let st;
  try {
    st = lstatSync(source);
  } catch (e) {
    throw new VmwuError('DATA_UNREADABLE', `${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
  }
  if (st.isSymbolicLink()) throw new VmwuError('DATA_UNSUPPORTED', `${path} is a symbolic link`, 'give the file or directory it points to');
  const steps = 3;
  o.progress?.('checking the files', 0, steps);
  const counted = scanTree(source);
  const plan = planImage(store, source, !st.isDirectory(), counted, o.freeBytes);
  checkFreeSpace(plan.needs,
    `free space there (\`vmwu gc\` removes unused layers and blobs from the store ${store.paths.root}), or use a store on a bigger disk (VMWU_HOME)`
    + `${plan.holesFilled ? `; the files have holes, but ${plan.holesFilled}` : ''}; nothing was written`,
    o.freeBytes);
  const work = makeWorkDir(store.paths, 'data-');
  let imageDir = work;
  try {
    // In /tmp, for the reason MKFS_TMP gives; removed with the work dir.
    if (plan.inMkfsTmp) imageDir = mkdtempSync(join(MKFS_TMP, 'vmwu-data-'));
    const tree = st.isDirectory() ? source : stageFile(source, join(work, 'tree'));
    o.progress?.(`making the erofs image of ${counted.files} files${plan.chunkBytes ? ', keeping their holes' : ''}`, 1, steps);
    const image = join(imageDir, 'image.erofs');
    // Fixed time and UUID, root-owned, no xattrs: the same files make the same image, so the same digest.
    const layout = plan.chunkBytes ? [`--chunksize=${plan.chunkBytes}`] : [];
    await runTool('mkfs.erofs', ['--quiet', '-T0', '-U', '6d8e2b2e-0000-4000-8000-000000000000', '--all-root', '-x', '-1', ...layout, image, tree],
      { hint: 'install erofs-utils' });
    o.progress?.('storing it by digest', 2, steps);
    const imageBytes = (await stat(image)).size;
    const blob = await store.blobs.putFile(image, { move: true });
    o.progress?.('stored', 3, steps);
    return { digest: blob.digest, imageBytes, counted, source };
  } finally {
    await rm(work, { recursive: true, force: true });
    if (imageDir !== work) await rm(imageDir, { recursive: true, force: true });
  }
}

export async function addDataset(store: Store, path: string, ref: DatasetRef, o: AddDatasetOptions = {}): Promise<{ dataset: Dataset; existed: boolean }> {
  const made = await makeDatasetImage(store, path, o);
  return insertDataset(store.db, {
    ...ref, digest: made.digest, format: 'erofs', imageBytes: made.imageBytes, contentBytes: made.counted.bytes, files: made.counted.files,
    source: made.source, createdAt: new Date().toISOString(),
  });
}
