import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import { convertImage, imageInfo } from '../image/qemu-img.js';
import { registerBase, type Base } from '../store/bases.js';
import { digestString } from '../store/blobs.js';
import type { Store } from '../store/store.js';

export interface ImportBaseOptions {
  name: string;
  arch: string;
  os: string;
  boot: 'bios' | 'kernel';
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  description?: string;
  /** The image has apt-get: builds on it may install packages. */
  apt?: boolean;
}

/**
 * `vmwu base add`: a user's disk image (any format qemu-img reads: qcow2, raw, vmdk,
 * vdi …) becomes a base. It is converted to a standalone qcow2 (a backing chain in
 * the user's image would point at files the store does not own). `bios` images boot
 * their own bootloader under firmware on q35; `kernel` images boot a given kernel and
 * initrd. What the image must contain for the agent: docs/imported-images.md.
 */
export async function importBase(store: Store, file: string, o: ImportBaseOptions): Promise<Base> {
  const src = resolve(file);
  if (!existsSync(src)) throw new VmwuError('NO_IMAGE', `${file}: no such file`);
  if (o.boot === 'kernel' && (!o.kernel || !o.initrd)) {
    throw new VmwuError('BAD_IMPORT', '--boot kernel needs --kernel and --initrd', 'or use --boot bios for an image with its own bootloader');
  }
  for (const f of [o.kernel, o.initrd]) if (f && !existsSync(f)) throw new VmwuError('NO_IMAGE', `${f}: no such file`);
  const info = await imageInfo(src).catch((e: Error) => {
    throw new VmwuError('BAD_IMAGE', `${file}: qemu-img cannot read it: ${e.message}`, 'give a qcow2, raw, vmdk or vdi disk image');
  });
  const work = await mkdtemp(join(store.paths.tmp, 'import-'));
  try {
    const qcow = join(work, 'root.qcow2');
    await convertImage(src, info.format, qcow, 'qcow2');
    const virtualSize = (await imageInfo(qcow)).virtualSize;
    const root = await store.blobs.putFile(qcow, { move: true });
    const kernel = o.kernel ? await store.blobs.putFile(o.kernel) : null;
    const initrd = o.initrd ? await store.blobs.putFile(o.initrd) : null;
    const cmdline = o.boot === 'kernel' ? o.cmdline ?? 'console=ttyS0 quiet reboot=t panic=-1' : '';
    const manifest = { arch: o.arch, os: o.os, boot: o.boot, kernel: kernel?.digest ?? null, initrd: initrd?.digest ?? null, root: root.digest, cmdline };
    return registerBase(store.db, {
      name: o.name, digest: digestString(JSON.stringify(manifest)), arch: o.arch, os: o.os,
      description: o.description ?? `imported from ${file} (${info.format})`, boot: o.boot,
      kernel: kernel?.digest ?? null, initrd: initrd?.digest ?? null, root: root.digest, cmdline,
      size: root.size + (kernel?.size ?? 0) + (initrd?.size ?? 0), virtualSize, packageManager: o.apt ? 'apt' : null,
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
