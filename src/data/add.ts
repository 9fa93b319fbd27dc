import { constants, accessSync, copyFileSync, linkSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { runTool } from '../image/tool.js';
import type { Store } from '../store/store.js';
import { makeWorkDir } from '../store/temp-files.js';
import { insertDataset, type Dataset } from './records.js';
import type { DatasetRef } from './ref.js';

/**
 * `vmwu data add PATH --name NAME[:VERSION]`: a file or directory made once
 * into a read-only erofs image, stored as a blob by its digest, and registered.
 * Jobs attach the image itself, read-only: nothing is copied per job.
 *
 * erofs, not squashfs or ext4: the guest kernel (Debian's cloud kernel) ships
 * it; it is made for read-only images (compact metadata, no journal, nothing to
 * replay or check at mount); uncompressed, a read is a plain block read, which
 * matters most under TCG where decompressing costs guest CPU.
 */

export interface AddDatasetOptions {
  progress?(step: string, done: number, total: number): void;
}

interface Walk {
  files: number;
  bytes: number;
}

/** Every entry readable (directories searchable), no sockets or devices: said now, with the path, rather than by mkfs.erofs halfway. */
function walk(path: string, acc: Walk = { files: 0, bytes: 0 }): Walk {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return acc;
  if (st.isDirectory()) {
    try {
      accessSync(path, constants.R_OK | constants.X_OK);
    } catch {
      throw new VmwuError('DATA_UNREADABLE', `${path}: directory is not readable`, 'fix its permissions, or leave it out of the dataset');
    }
    for (const e of readdirSync(path)) walk(join(path, e), acc);
    return acc;
  }
  if (!st.isFile()) throw new VmwuError('DATA_UNSUPPORTED', `${path}: a ${st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : 'device'} cannot go into a dataset`, 'datasets hold files, directories and symbolic links');
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new VmwuError('DATA_UNREADABLE', `${path}: file is not readable`, 'fix its permissions, or leave it out of the dataset');
  }
  acc.files++;
  acc.bytes += st.size;
  return acc;
}

/** A single file goes into a directory of its own (mkfs.erofs takes a directory): linked where it can be, else copied. */
function stageFile(file: string, dir: string): string {
  mkdirSync(dir);
  const dest = join(dir, basename(file));
  try {
    linkSync(file, dest);
  } catch {
    copyFileSync(file, dest, constants.COPYFILE_FICLONE);
  }
  return dir;
}

export async function addDataset(store: Store, path: string, ref: DatasetRef, o: AddDatasetOptions = {}): Promise<{ dataset: Dataset; existed: boolean }> {
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
  const counted = walk(source);
  const work = makeWorkDir(store.paths, 'data-');
  try {
    const tree = st.isDirectory() ? source : stageFile(source, join(work, 'tree'));
    o.progress?.(`making the erofs image of ${counted.files} files`, 1, steps);
    const image = join(work, 'image.erofs');
    // Fixed time and UUID, root-owned, no xattrs: the same files make the same image, so the same digest.
    await runTool('mkfs.erofs', ['--quiet', '-T0', '-U', '6d8e2b2e-0000-4000-8000-000000000000', '--all-root', '-x', '-1', image, tree],
      { hint: 'install erofs-utils' });
    o.progress?.('storing it by digest', 2, steps);
    const imageBytes = (await stat(image)).size;
    const blob = await store.blobs.putFile(image, { move: true });
    o.progress?.('registered', 3, steps);
    return insertDataset(store.db, {
      ...ref, digest: blob.digest, format: 'erofs', imageBytes, contentBytes: counted.bytes, files: counted.files, source, createdAt: new Date().toISOString(),
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
