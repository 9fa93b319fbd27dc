import { statfsSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VmwuError } from '../errors.js';
import { runTool } from '../image/tool.js';
import { isNoSpace } from '../store/no-space.js';
import { ensurePrivateDir } from '../store/private-dir.js';
import { ownedDirIn, reapOwnedDirs } from './owned-dirs.js';

/**
 * A checkpointable job's RAM as a file of its own (docs/architecture.md,
 * "Checkpoints at memory speed"). QEMU maps it shared, so the guest's RAM is
 * the file: a checkpoint pauses the VM, saves the device state alone
 * (`x-ignore-shared`) and copies the file sparsely, at the speed of memory; a
 * restore copies the saved file back and loads a few KB of device state.
 *
 * The file lives on tmpfs (/dev/shm) where there is room: on a disk's
 * filesystem a shared mapping would be written back to the disk as the guest
 * runs. Elsewhere it goes into the instance's scratch directory.
 */

const TMPFS_MAGIC = 0x01021994;
const PAGE = 4096;

/** `/dev/shm/vmwu-<uid>/memory`: where instances' own RAM goes on tmpfs. */
export function ownMemoryRoot(shm = '/dev/shm'): string {
  return join(shm, `vmwu-${process.getuid?.() ?? 'user'}`, 'memory');
}

/**
 * An instance's own RAM dir on tmpfs (src/run/instance.ts instancePaths), named
 * for this process (src/run/owned-dirs.ts): tmpfs holds it in memory until
 * someone removes it, and a vmwu killed with -9, or a Slurm task killed at the
 * end of its allocation, cannot. The next one that makes such a dir does.
 */
export function ownMemoryDir(shm?: string): string {
  return ownedDirIn(ownMemoryRoot(shm), 'memory');
}

/** The own RAM file in `dir` (the instance's memory dir on tmpfs, or its scratch dir). */
function ownMemoryIn(dir: string): string {
  return join(dir, 'memory');
}

/** Whether `dir`'s filesystem is a tmpfs with `bytes` free (and some to spare). */
function tmpfsWithRoom(dir: string, bytes: number): boolean {
  try {
    const fs = statfsSync(dir);
    return fs.type === TMPFS_MAGIC && fs.bavail * fs.bsize > bytes + 64 * 1024 ** 2;
  } catch {
    return false;
  }
}

/**
 * Makes the instance's own RAM file, `memoryMiB` long: a sparse copy of `from`
 * (a template's RAM, a checkpoint's), or empty for a boot. Its path.
 *
 * It is reserved (fallocate): a guest writing RAM that a full filesystem
 * cannot hold would kill QEMU with SIGBUS mid-job. Reserved pages not yet
 * written stay holes to SEEK_DATA, so copies of the file stay sparse and quick.
 * A tmpfs without the room gives way to the scratch dir.
 */
export async function makeOwnMemory(p: { scratch: string; memoryDir: string }, memoryMiB: number, from?: string): Promise<string> {
  const bytes = memoryMiB * 1024 ** 2;
  if (tmpfsWithRoom(dirname(dirname(dirname(p.memoryDir))), bytes) && await madeOnTmpfs(p.memoryDir)) {
    try {
      return await reservedCopy(ownMemoryIn(p.memoryDir), bytes, from);
    } catch (e) {
      // Others took the room meanwhile: the disk's filesystem then.
      if (!isNoSpace(e)) throw e;
      await removeOwnMemory(p);
    }
  }
  return reservedCopy(ownMemoryIn(p.scratch), bytes, from);
}

/**
 * The instance's memory dir made on tmpfs, inside this user's private dirs
 * there; false where those are not safe to use (another user made them first
 * in the shared /dev/shm): the scratch dir serves then.
 */
async function madeOnTmpfs(memoryDir: string): Promise<boolean> {
  try {
    ensurePrivateDir(dirname(dirname(memoryDir)));
    ensurePrivateDir(dirname(memoryDir));
  } catch {
    return false;
  }
  reapOwnedDirs(dirname(memoryDir));
  await mkdir(memoryDir, { mode: 0o700 });
  return true;
}

async function reservedCopy(file: string, bytes: number, from: string | undefined): Promise<string> {
  // Only what this made is removed on failure.
  let made = false;
  try {
    if (from) {
      made = true;
      await runTool('cp', ['--sparse=always', '--reflink=auto', from, file]);
    } else {
      const fh = await open(file, 'wx', 0o600);
      made = true;
      await fh.truncate(bytes).finally(() => fh.close());
    }
    // All but the last page: a file with as many blocks as bytes is one that cp
    // (coreutils 9) copies by reading every byte, 5× slower, instead of seeking to its data.
    await runTool('fallocate', ['--length', String(bytes - PAGE), file]);
    return file;
  } catch (e) {
    if (made) await rm(file, { force: true });
    if (isNoSpace(e)) throw new VmwuError('NO_SPACE', `no room for the job's RAM (${bytes} bytes) in ${dirname(file)}`, 'free some space there, or give the job less --memory', { cause: e });
    throw e;
  }
}

export async function removeOwnMemory(p: { memoryDir: string }): Promise<void> {
  await rm(p.memoryDir, { recursive: true, force: true, maxRetries: 3 });
}
