import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { hostTscKhz } from '../../src/vm/host.js';
import { testHome, tmp, vmwu } from '../support/harness.js';

/**
 * An imported, firmware-booted image: a FAT disk with SYSLINUX (installed
 * rootless through mtools), our kernel and initramfs in self-contained mode. QEMU
 * boots it on q35 with SeaBIOS; nothing is passed with -kernel, so the kernel
 * command line the guest sees can only have come from the image's own bootloader.
 */
test('vmwu base add: a BIOS-bootable image runs a job under firmware', { timeout: 180_000 }, async () => {
  const tiny = JSON.parse((await vmwu(['base', 'show', 'tiny', '--json'])).stdout) as { kernel: string; initrd: string };
  const blob = (d: string) => join(testHome(), 'blobs', 'sha256', d.slice('sha256:'.length));
  const dir = tmp('vmwu-import-');
  const img = join(dir, 'disk.img');
  writeFileSync(join(dir, 'syslinux.cfg'), [
    'DEFAULT vmwu', 'TIMEOUT 0', 'PROMPT 0', 'LABEL vmwu', '  KERNEL vmlinuz', '  INITRD initrd',
    `  APPEND console=ttyS0 quiet reboot=t panic=-1 vmwu.root=none tsc_early_khz=${hostTscKhz()}`, '',
  ].join('\n'));
  execFileSync('mkfs.vfat', ['-C', img, '65536'], { stdio: 'ignore' });
  const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
  execFileSync('mcopy', ['-i', img, blob(tiny.kernel), '::vmlinuz'], { env });
  execFileSync('mcopy', ['-i', img, blob(tiny.initrd), '::initrd'], { env });
  execFileSync('mcopy', ['-i', img, join(dir, 'syslinux.cfg'), '::syslinux.cfg'], { env });
  execFileSync('syslinux', ['--install', img]);

  const home = { VMWU_HOME: join(dir, 'store') };
  const add = await vmwu(['base', 'add', img, '--name', 'fatboot', '--boot', 'bios', '--json'], home);
  assert.equal(add.code, 0, add.stderr);
  const base = JSON.parse(add.stdout) as { boot: string; kernel: string | null; os: string; arch: string };
  assert.deepEqual([base.boot, base.kernel, base.arch, base.os], ['bios', null, 'x86_64', 'linux']);
  const listed = JSON.parse((await vmwu(['base', 'list', '--arch', 'x86_64', '--os', 'linux', '--json'], home)).stdout) as { name: string }[];
  assert.deepEqual(listed.map((b) => b.name), ['fatboot']);

  const r = await vmwu(['run', '--base', 'fatboot', '--param', 'x=7', '--json', '--', 'sh', '-c', 'echo "firmware $x"; cat /proc/cmdline > cmdline.txt'], home);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { status: string; outDir: string };
  assert.equal(j.status, 'succeeded');
  assert.equal(readFileSync(join(j.outDir, 'stdout'), 'utf8'), 'firmware 7\n');
  assert.match(readFileSync(join(j.outDir, 'work', 'cmdline.txt'), 'utf8'), /vmwu\.root=none/, 'the bootloader in the image chose the command line');

  const bad = await vmwu(['base', 'add', join(dir, 'syslinux.cfg'), '--name', 'x', '--boot', 'kernel'], home);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /--boot kernel needs --kernel and --initrd/);
});
