import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fingerprintTree, volumeImageMin, VOLUME_IMAGE_MIN_DEFAULT } from '../../../src/docker/volume-images.js';

const dir = mkdtempSync(join(tmpdir(), 'vmwu-volfp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a tree\'s fingerprint stays while nothing changes and moves with any name, size, time, mode or link target', () => {
  const t = join(dir, 't');
  mkdirSync(join(t, 'sub'), { recursive: true });
  writeFileSync(join(t, 'a'), 'one');
  writeFileSync(join(t, 'sub', 'b'), 'two two');
  symlinkSync('a', join(t, 'l'));
  const first = fingerprintTree(t);
  assert.equal(first.bytes, 10);
  assert.deepEqual(fingerprintTree(t), first);
  const changes: (() => void)[] = [
    () => writeFileSync(join(t, 'a'), 'One'),
    () => utimesSync(join(t, 'sub', 'b'), new Date(1000), new Date(1000)),
    () => writeFileSync(join(t, 'sub', 'c'), ''),
    () => { rmSync(join(t, 'l')); symlinkSync('sub/b', join(t, 'l')); },
  ];
  let prev = first.digest;
  for (const change of changes) {
    change();
    const now = fingerprintTree(t).digest;
    assert.notEqual(now, prev);
    prev = now;
  }
  assert.equal(fingerprintTree(join(t, 'a')).bytes, 3, 'a single file too');
});

test('VMWU_DOCKER_VOLUME_IMAGE_MIN: a size, off, or the default; anything else is refused by name', () => {
  assert.equal(volumeImageMin({}), VOLUME_IMAGE_MIN_DEFAULT);
  assert.equal(volumeImageMin({ VMWU_DOCKER_VOLUME_IMAGE_MIN: '1M' }), 1024 ** 2);
  assert.equal(volumeImageMin({ VMWU_DOCKER_VOLUME_IMAGE_MIN: '0' }), 0);
  assert.equal(volumeImageMin({ VMWU_DOCKER_VOLUME_IMAGE_MIN: 'off' }), undefined);
  assert.throws(() => volumeImageMin({ VMWU_DOCKER_VOLUME_IMAGE_MIN: 'lots' }), /VMWU_DOCKER_VOLUME_IMAGE_MIN/);
});
