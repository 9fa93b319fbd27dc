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
 * A copy-on-write overlay over a read-only backing image. Given the size, `-u`
 * tells qemu-img not to open the backing chain at all, so the cost is the same
 * for a 100 MB base as for a 2 GB one (the caller has checked the backing exists).
 */
export async function createOverlay(path: string, backing: string, backingFormat: string, virtualSize?: number): Promise<void> {
  const sized = virtualSize !== undefined;
  const args = ['create', '-q', ...(sized ? ['-u'] : []), '-f', 'qcow2', '-o', 'lazy_refcounts=on', '-b', backing, '-F', backingFormat, path,
    ...(sized ? [String(virtualSize)] : [])];
  await runTool('qemu-img', args);
}

/** An empty image of `virtualSize` (qcow2: a few hundred KiB whatever the size). */
export async function createImage(path: string, format: 'qcow2' | 'raw', virtualSize: number): Promise<void> {
  await runTool('qemu-img', ['create', '-q', '-f', format, path, String(virtualSize)]);
}

/** Converts an image vmwu made itself (untrusted ones: untrusted-image.ts). */
export async function convertImage(src: string, srcFormat: 'qcow2' | 'raw', dest: string, destFormat: 'qcow2' | 'raw'): Promise<void> {
  await runTool('qemu-img', ['convert', '-q', '-f', srcFormat, '-O', destFormat, src, dest]);
}

/** An image vmwu made itself, of a format it knows: never probed (images from outside: untrusted-image.ts). */
export async function imageInfo(path: string, format: 'qcow2' | 'raw'): Promise<ImageInfo> {
  const { stdout } = await runTool('qemu-img', ['info', '--output=json', '-U', '-f', format, path]);
  const j = JSON.parse(stdout) as { format: string; 'virtual-size': number; 'actual-size': number; 'backing-filename'?: string };
  return { format: j.format, virtualSize: j['virtual-size'], actualSize: j['actual-size'], backingFile: j['backing-filename'] };
}
