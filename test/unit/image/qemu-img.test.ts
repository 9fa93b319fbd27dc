import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createOverlay } from '../../../src/image/qemu-img.js';

test('an overlay like one qemu-img made before is the same bytes, without qemu-img; another size needs qemu-img again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-overlay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const backing = join(dir, 'base.qcow2');
  assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', backing, '64M']).status, 0);
  await createOverlay(join(dir, 'a.qcow2'), backing, 'qcow2', 128 * 1024 ** 2);
  // From here a qemu-img that only fails: whatever still works was made without it.
  const bin = join(dir, 'bin');
  spawnSync('mkdir', [bin]);
  writeFileSync(join(bin, 'qemu-img'), '#!/bin/sh\necho "not this time" >&2\nexit 1\n');
  chmodSync(join(bin, 'qemu-img'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  try {
    await createOverlay(join(dir, 'b.qcow2'), backing, 'qcow2', 128 * 1024 ** 2);
    await assert.rejects(createOverlay(join(dir, 'c.qcow2'), backing, 'qcow2', 256 * 1024 ** 2), /qemu-img/);
    await assert.rejects(createOverlay(join(dir, 'd.qcow2'), join(dir, 'other.qcow2'), 'qcow2', 128 * 1024 ** 2), /qemu-img/);
  } finally {
    process.env.PATH = path;
  }
  assert.deepEqual(readFileSync(join(dir, 'b.qcow2')), readFileSync(join(dir, 'a.qcow2')));
  const info = JSON.parse(spawnSync('qemu-img', ['info', '--output=json', '-U', join(dir, 'b.qcow2')], { encoding: 'utf8' }).stdout) as { 'virtual-size': number; 'backing-filename': string };
  assert.equal(info['virtual-size'], 128 * 1024 ** 2);
  assert.equal(info['backing-filename'], backing);
  // It is an overlay QEMU writes to: a write lands in it and the backing is untouched.
  assert.equal(spawnSync('qemu-io', ['-c', 'write -P 0x5a 0 64k', join(dir, 'b.qcow2')]).status, 0);
  assert.match(spawnSync('qemu-io', ['-c', 'read -P 0x5a 0 64k', join(dir, 'b.qcow2')], { encoding: 'utf8' }).stdout, /read 65536\/65536/);
  assert.match(spawnSync('qemu-io', ['-r', '-c', 'read -P 0 0 64k', '-f', 'qcow2', backing], { encoding: 'utf8' }).stdout, /read 65536\/65536/);
});
