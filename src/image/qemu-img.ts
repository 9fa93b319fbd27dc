import { readFile, writeFile } from 'node:fs/promises';
import { VmwuError } from '../errors.js';
import { runTool } from './tool.js';

/**
 * qemu-img on images vmwu made itself: overlays on a base or layer, empty disks, conversions and
 * `info` (images from outside go through untrusted-image.ts).
 */

export interface ImageInfo {
  format: string;
  virtualSize: number;
  actualSize: number;
  backingFile?: string;
}

/**
 * Empty sized overlays qemu-img made in this process, by backing, format and
 * size: another is the same bytes (a qcow2 header names its backing file and
 * size, and nothing of when or where it was made), so a sweep's jobs on one
 * template start no qemu-img after the first.
 */
const madeOverlays = new Map<string, Buffer>();
const MADE_OVERLAYS_KEPT = 32;
const MADE_OVERLAY_MAX_BYTES = 4 * 1024 * 1024;

/**
 * A copy-on-write overlay over a read-only backing image. Given the size, `-u`
 * tells qemu-img not to open the backing chain at all, so the cost is the same
 * for a 100 MB base as for a 2 GB one (the caller has checked the backing exists).
 */
export async function createOverlay(path: string, backing: string, backingFormat: string, virtualSize?: number): Promise<void> {
  const sized = virtualSize !== undefined;
  const key = sized ? `${backing}\0${backingFormat}\0${virtualSize}` : undefined;
  const made = key === undefined ? undefined : madeOverlays.get(key);
  if (made) {
    await writeFile(path, made);
    return;
  }
  const args = ['create', '-q', ...(sized ? ['-u'] : []), '-f', 'qcow2', '-o', 'lazy_refcounts=on', '-b', backing, '-F', backingFormat, path,
    ...(sized ? [String(virtualSize)] : [])];
  await runTool('qemu-img', args);
  if (key === undefined) return;
  const bytes = await readFile(path);
  if (bytes.length > MADE_OVERLAY_MAX_BYTES) return;
  if (madeOverlays.size >= MADE_OVERLAYS_KEPT) madeOverlays.delete(madeOverlays.keys().next().value!);
  madeOverlays.set(key, bytes);
}

/** An empty image of `virtualSize` (qcow2: a few hundred KiB whatever the size). */
export async function createImage(path: string, format: 'qcow2' | 'raw', virtualSize: number): Promise<void> {
  await runTool('qemu-img', ['create', '-q', '-f', format, path, String(virtualSize)]);
}

/**
 * How the qcow2 blobs vmwu makes for its store (base roots and layers) are written:
 * each cluster compressed with zstd, which QEMU reads in place, so a layer costs less
 * to keep, export and push, and nothing is unpacked before a job.
 * `VMWU_LAYER_COMPRESSION=none` writes them plain: for hosts where CPU is scarcer than
 * disk, and as the benchmark's baseline.
 */
export function storedQcow2Flags(env: NodeJS.ProcessEnv = process.env): string[] {
  const v = env.VMWU_LAYER_COMPRESSION ?? 'zstd';
  if (v === 'zstd') return ['-c', '-o', 'compression_type=zstd'];
  if (v === 'none') return [];
  throw new VmwuError('BAD_VALUE', `VMWU_LAYER_COMPRESSION=${v} is not a compression vmwu knows`, 'use zstd (the default) or none');
}

/** Converts an image vmwu made itself (untrusted ones: untrusted-image.ts); `stored` when the result becomes a store blob. */
export async function convertImage(src: string, srcFormat: 'qcow2' | 'raw', dest: string, destFormat: 'qcow2' | 'raw', o: { stored?: boolean } = {}): Promise<void> {
  await runTool('qemu-img', ['convert', '-q', '-f', srcFormat, '-O', destFormat, ...(o.stored && destFormat === 'qcow2' ? storedQcow2Flags() : []), src, dest]);
}

/**
 * Rewrites the overlay a job left (backed by the store blob `parentPath`) as a store
 * blob: only the clusters the overlay holds, compressed (storedQcow2Flags), backed by
 * its parent's relative blob name `parentName`. convert with -B copies only what the
 * source's top holds; its zeroed clusters stay zero clusters, so deletions survive.
 */
export async function packOverlay(overlay: string, parentPath: string, parentName: string, dest: string): Promise<void> {
  // The overlay may name a path of the run that made it: point it at the parent in the store first.
  await runTool('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', parentPath, '-F', 'qcow2', overlay]);
  await runTool('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'qcow2', ...storedQcow2Flags(), '-B', parentPath, '-F', 'qcow2', overlay, dest]);
  await runTool('qemu-img', ['rebase', '-q', '-u', '-f', 'qcow2', '-b', parentName, '-F', 'qcow2', dest]);
}

/** An image vmwu made itself, of a format it knows: never probed (images from outside: untrusted-image.ts). */
export async function imageInfo(path: string, format: 'qcow2' | 'raw'): Promise<ImageInfo> {
  const { stdout } = await runTool('qemu-img', ['info', '--output=json', '-U', '-f', format, path]);
  const j = JSON.parse(stdout) as { format: string; 'virtual-size': number; 'actual-size': number; 'backing-filename'?: string };
  return { format: j.format, virtualSize: j['virtual-size'], actualSize: j['actual-size'], backingFile: j['backing-filename'] };
}
