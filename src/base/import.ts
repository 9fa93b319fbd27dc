import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { VmwuError } from '../errors.js';
import type { AcceptedFormat } from '../image/image-header.js';
import { imageInfo } from '../image/qemu-img.js';
import { checkUntrustedImage, convertUntrustedImage } from '../image/untrusted-image.js';
import { findBase, registerBase, type Base } from '../store/bases.js';
import { digestString } from '../store/blobs.js';
import type { Store } from '../store/store.js';
import { makeWorkDir } from '../store/temp-files.js';

/** A user's own disk image made into a base (`vmwu base add`), converted into the store as an untrusted image. */

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
  /** The image's format; without it, vmwu reads it from the file's first bytes. */
  format?: AcceptedFormat;
}

/**
 * `vmwu base add`: a user's disk image, raw or standalone qcow2, becomes a base. The
 * image is untrusted: its format is given or read by vmwu, never probed by qemu-img,
 * and one that names other files (a backing or data file, a VMDK extent) is refused,
 * since converting it would copy those host files into the store
 * (src/image/untrusted-image.ts). It is converted to a qcow2 of its own. `bios` images boot
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
  const image = await checkUntrustedImage(src, file, o.format);
  const work = makeWorkDir(store.paths, 'import-');
  try {
    const qcow = join(work, 'root.qcow2');
    await convertUntrustedImage(image, file, qcow);
    const virtualSize = (await imageInfo(qcow, 'qcow2')).virtualSize;
    const root = await store.blobs.putFile(qcow, { move: true });
    const kernel = o.kernel ? await store.blobs.putFile(o.kernel) : null;
    const initrd = o.initrd ? await store.blobs.putFile(o.initrd) : null;
    const cmdline = o.boot === 'kernel' ? o.cmdline ?? 'console=ttyS0 quiet reboot=t panic=-1' : '';
    const manifest = { arch: o.arch, os: o.os, boot: o.boot, kernel: kernel?.digest ?? null, initrd: initrd?.digest ?? null, root: root.digest, cmdline };
    const digest = digestString(JSON.stringify(manifest));
    const same = findBase(store.db, digest);
    if (same && same.name !== o.name) {
      throw new VmwuError('BASE_EXISTS', `${file}: this image, with these boot settings, is already base ${same.name} (${digest.slice(0, 19)})`,
        `use base ${same.name}, or remove it first (vmwu base rm ${same.name})`);
    }
    return registerBase(store.db, {
      name: o.name, digest, arch: o.arch, os: o.os,
      description: o.description ?? `imported from ${file} (${image.format}${image.how === 'detected' ? ', detected' : ''})`, boot: o.boot,
      kernel: kernel?.digest ?? null, initrd: initrd?.digest ?? null, root: root.digest, cmdline,
      size: root.size + (kernel?.size ?? 0) + (initrd?.size ?? 0), virtualSize, packageManager: o.apt ? 'apt' : null,
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
