import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, test } from 'node:test';
import { blobLinkDirIn, reapBlobLinkDirs } from '../../../src/run/blob-link-dirs.js';

test('link dirs of vmwu processes that died go; this process\'s, and anything else in the instances dir, stay', () => {
  const instances = mkdtempSync(join(tmpdir(), 'vmwu-linkdirs-'));
  after(() => rmSync(instances, { recursive: true, force: true }));
  const mine = blobLinkDirIn(instances);
  const dead = join(instances, '.blobs-4194303_1-0123456789ab');
  for (const d of [mine, dead, join(instances, 'run-1'), join(instances, '.blobs-not-ours')]) {
    mkdirSync(d);
    writeFileSync(join(d, 'x'), '');
  }
  assert.deepEqual(reapBlobLinkDirs(instances), [basename(dead)]);
  assert.deepEqual(readdirSync(instances).sort(), ['.blobs-not-ours', basename(mine), 'run-1'].sort());
});
