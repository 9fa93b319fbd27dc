import { runTool } from './tool.js';

/** The ext4 disks vmwu makes for guests without root (`mke2fs -d`): a base's root filesystem, a job's app disk and a build's job disk. */

/**
 * An ext4 filesystem image, empty or populated from a directory, rootless
 * (`mke2fs -d`). No journal: every such disk is either read-only in the guest or
 * thrown away, so the journal would only cost boot and write time.
 */
export async function makeExt4(image: string, sizeBytes: number, label: string, dir?: string): Promise<void> {
  const kib = Math.max(Math.ceil(sizeBytes / 1024), 4096);
  await runTool('mke2fs', ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-L', label, '-E', 'root_owner=0:0', ...(dir ? ['-d', dir] : []), image, `${kib}k`],
    { hint: 'install e2fsprogs (Debian package e2fsprogs)' });
}

export async function makeExt4FromDir(image: string, dir: string, sizeBytes: number, label: string): Promise<void> {
  await makeExt4(image, sizeBytes, label, dir);
}
