import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tmp, vmwu } from '../support/harness.js';

/**
 * `vmwu base add` with images that name host files. Each fixture is first shown to be
 * dangerous (plain qemu-img copies the secret out of it), then vmwu must refuse it,
 * register nothing and leave no byte of the secret anywhere in its store.
 */
const dir = tmp('vmwu-base-add-');
const SECRET = `vmwu-host-secret-${randomBytes(12).toString('hex')}`;
const secretFile = join(dir, 'secret');
writeFileSync(secretFile, Buffer.concat([Buffer.from(SECRET), Buffer.alloc(1024 * 1024 - SECRET.length)]));

const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { stdio: ['ignore', 'pipe', 'pipe'] });
const path = (name: string) => join(dir, name);

/** What plain `qemu-img convert` (probing, following references) makes of an image. */
function leaksThroughQemuImg(image: string, format?: string): boolean {
  const out = path(`leak-${randomBytes(4).toString('hex')}.raw`);
  qemuImg('convert', ...(format ? ['-f', format] : []), '-O', 'raw', image, out);
  return readFileSync(out).includes(SECRET);
}

function filesUnder(d: string): string[] {
  return readdirSync(d, { withFileTypes: true, recursive: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Whether any file in the store, or any qcow2 blob's guest-visible content, holds the secret. */
function storeHolds(store: string): boolean {
  for (const f of filesUnder(store)) {
    const bytes = readFileSync(f);
    if (bytes.includes(SECRET)) return true;
    if (bytes.subarray(0, 4).toString('latin1') === 'QFI\xfb') {
      const raw = path(`blob-${randomBytes(4).toString('hex')}.raw`);
      qemuImg('convert', '-f', 'qcow2', '-O', 'raw', f, raw);
      if (readFileSync(raw).includes(SECRET)) return true;
    }
  }
  return false;
}

async function bases(home: { VMWU_HOME: string }): Promise<string[]> {
  const r = await vmwu(['base', 'list', '--json'], home);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { name: string }[]).map((b) => b.name);
}

async function refused(home: { VMWU_HOME: string }, args: string[], pattern: RegExp): Promise<string> {
  const r = await vmwu(['base', 'add', ...args, '--name', `x${randomBytes(3).toString('hex')}`], home);
  assert.equal(r.code, 125, `${args.join(' ')} should be refused:\n${r.stdout}${r.stderr}`);
  assert.match(r.stderr, pattern);
  return r.stderr;
}

describe('vmwu base add reads only the image it is given', () => {
  const home = { VMWU_HOME: path('store') };

  test('a qcow2 whose backing file is a host file is refused, nothing registered', async () => {
    qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', secretFile, '-F', 'raw', path('backed.qcow2'), '1M');
    assert.ok(leaksThroughQemuImg(path('backed.qcow2')), 'precondition: qemu-img follows the backing file');
    await refused(home, [path('backed.qcow2')], /backed\.qcow2: it has a backing file \(".*\/secret"\), which would be read from the host/);
    await refused(home, [path('backed.qcow2'), '--format', 'qcow2'], /backed\.qcow2: it has a backing file/);
    assert.deepEqual(await bases(home), []);
  });

  test('a qcow2 with an external data file is refused', async () => {
    const data = path('data');
    qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${data},data_file_raw=on`, path('ext.qcow2'), '1M');
    writeFileSync(data, readFileSync(secretFile));
    assert.ok(leaksThroughQemuImg(path('ext.qcow2')), 'precondition: qemu-img reads the data file');
    await refused(home, [path('ext.qcow2')], /ext\.qcow2: it has an external data file \(".*\/data"\)/);
    assert.deepEqual(await bases(home), []);
  });

  test('a VMDK descriptor naming a host file is refused, with the accepted formats', async () => {
    const vmdk = path('evil.vmdk');
    writeFileSync(vmdk, ['# Disk DescriptorFile', 'version=1', 'CID=fffffffe', 'parentCID=ffffffff', 'createType="monolithicFlat"', '',
      `RW 2048 FLAT "${secretFile}" 0`, ''].join('\n'));
    assert.ok(leaksThroughQemuImg(vmdk), 'precondition: qemu-img reads the extent');
    const err = await refused(home, [vmdk], /evil\.vmdk: a vmdk \(descriptor\) image; vmwu imports only raw or qcow2 images/);
    assert.match(err, /can name other files on the host/);
    // The same text under another name, or forced to qcow2, is no better.
    writeFileSync(path('evil.img'), readFileSync(vmdk));
    await refused(home, [path('evil.img')], /evil\.img: a vmdk \(descriptor\) image/);
    await refused(home, [vmdk, '--format', 'qcow2'], /evil\.vmdk: not a usable qcow2 image: it does not start with the qcow2 magic/);
    await refused(home, [vmdk, '--format', 'vmdk'], /--format vmdk: expected raw or qcow2/);
    assert.deepEqual(await bases(home), []);
  });

  test('a pipe or a device is refused before anything reads it', async () => {
    execFileSync('mkfifo', [path('fifo')]);
    await refused(home, [path('fifo')], /fifo: not a regular file/);
    await refused(home, ['/dev/zero', '--format', 'raw'], /\/dev\/zero: not a regular file/);
  });

  test('an image forced to raw is read as its own bytes only', async () => {
    // The backed qcow2 as raw: the container itself becomes the disk, its backing file is never opened.
    const r = await vmwu(['base', 'add', path('backed.qcow2'), '--format', 'raw', '--name', 'container', '--json'], home);
    assert.equal(r.code, 0, r.stderr);
    assert.match((JSON.parse(r.stdout) as { description: string }).description, /\(raw\)$/);
    assert.ok(!storeHolds(home.VMWU_HOME), 'no file in the store holds the secret');
  });

  test('a raw image named .vmdk is imported only with --format raw', async () => {
    const disk = randomBytes(2 * 1024 * 1024);
    disk.writeUInt16BE(0x55aa, 510);
    writeFileSync(path('disk.vmdk'), disk);
    await refused(home, [path('disk.vmdk')], /disk\.vmdk: cannot tell its format: it is named \.vmdk but does not start with a vmdk header\n.*--format raw/);
    const r = await vmwu(['base', 'add', path('disk.vmdk'), '--format', 'raw', '--name', 'misnamed'], home);
    assert.equal(r.code, 0, r.stderr);
  });

  test('plain raw and qcow2 images still import, byte for byte', async () => {
    const raw = randomBytes(3 * 1024 * 1024);
    raw.writeUInt16BE(0x55aa, 510);
    writeFileSync(path('plain.img'), raw);
    const other = randomBytes(3 * 1024 * 1024);
    writeFileSync(path('other.raw'), other);
    qemuImg('convert', '-f', 'raw', '-O', 'qcow2', '-c', path('other.raw'), path('plain.qcow2'));

    for (const [file, name, content] of [['plain.img', 'plainraw', raw], ['plain.qcow2', 'plainqcow', other]] as const) {
      const r = await vmwu(['base', 'add', path(file), '--name', name, '--json'], home);
      assert.equal(r.code, 0, r.stderr);
      const b = JSON.parse(r.stdout) as { root: string; virtualSize: number; description: string };
      assert.equal(b.virtualSize, content.length);
      assert.match(b.description, new RegExp(`\\(${file.endsWith('qcow2') ? 'qcow2' : 'raw'}, detected\\)$`));
      const blob = join(home.VMWU_HOME, 'blobs', 'sha256', b.root.slice('sha256:'.length));
      const back = path(`${name}.back`);
      qemuImg('convert', '-f', 'qcow2', '-O', 'raw', blob, back);
      assert.ok(readFileSync(back).equals(content), `${file}: the base's disk holds exactly the image's content`);
      assert.equal(statSync(blob).mode & 0o222, 0, 'blobs are read-only');
    }
    // The same disk again under another name is a typed error, not a database one.
    await refused(home, [path('plain.img')], /plain\.img: this image, with these boot settings, is already base plainraw/);
    assert.deepEqual((await bases(home)).sort(), ['container', 'misnamed', 'plainqcow', 'plainraw']);
  });

  test('no file in the store holds the secret; the check itself finds it where it is', async () => {
    assert.ok(!storeHolds(home.VMWU_HOME));
    // Control: an image that carries the secret in its own bytes does bring it in.
    const control = { VMWU_HOME: path('control-store') };
    const r = await vmwu(['base', 'add', secretFile, '--format', 'raw', '--name', 'control'], control);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(storeHolds(control.VMWU_HOME));
  });
});
