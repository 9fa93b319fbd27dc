import { open, writeFile } from 'node:fs/promises';

/**
 * What a clone's QEMU is given for `-kernel` and `-initrd`. A clone's RAM comes
 * from its template, so it runs neither, but QEMU reads both whole into memory
 * of its own when it starts: for the Debian kernel and vmwu's initramfs that is
 * 18 MB read, zero-filled and copied per clone (~7 ms of its CPU here). Its
 * loader needs only a bzImage's real-mode part (the boot protocol's setup
 * header) with something after it, and accepts an empty initrd.
 */

/** How many bytes of a bzImage the stub keeps: its real-mode sectors (`setup_sects`, 4 when 0) and the boot sector, then one page. */
export function bootHeaderBytes(head: Buffer): number {
  if (head.length < 0x206 || head.readUInt32LE(0x202) !== 0x53726448) throw new Error('not a Linux bzImage: no "HdrS" boot header');
  const setupSects = head[0x1f1] || 4;
  return (setupSects + 1) * 512 + 4096;
}

/** Writes a kernel's boot header and an empty initrd for clones. */
export async function writeBootStub(kernel: string, stub: { kernel: string; initrd: string }): Promise<void> {
  const fh = await open(kernel, 'r');
  try {
    const head = Buffer.alloc(1024);
    await fh.read(head, 0, head.length, 0);
    const bytes = Buffer.alloc(bootHeaderBytes(head));
    const { bytesRead } = await fh.read(bytes, 0, bytes.length, 0);
    if (bytesRead !== bytes.length) throw new Error(`the kernel ${kernel} is shorter than its boot header says`);
    await writeFile(stub.kernel, bytes);
    await writeFile(stub.initrd, '');
  } finally {
    await fh.close();
  }
}
