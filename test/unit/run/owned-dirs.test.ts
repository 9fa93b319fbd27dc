import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, test } from 'node:test';
import { ownedDirIn, reapOwnedDirs } from '../../../src/run/owned-dirs.js';

test('owned dirs of vmwu processes that died go; this process\'s, and anything else in the instances dir, stay', () => {
  const instances = mkdtempSync(join(tmpdir(), 'vmwu-owned-'));
  after(() => rmSync(instances, { recursive: true, force: true }));
  const mine = [ownedDirIn(instances, 'blobs'), ownedDirIn(instances, 'warm'), ownedDirIn(instances, 'memory')];
  const dead = [join(instances, '.blobs-4194303_1-0123456789ab'), join(instances, '.warm-4194303_1-0123456789ab'), join(instances, '.memory-4194303_1-0123456789ab')];
  const others = [join(instances, 'run-1'), join(instances, '.blobs-not-ours'), join(instances, '.cold-4194303_1-0123456789ab')];
  for (const d of [...mine, ...dead, ...others]) {
    mkdirSync(d);
    writeFileSync(join(d, 'x'), '');
  }
  assert.deepEqual(reapOwnedDirs(instances).sort(), dead.map((d) => basename(d)).sort());
  assert.deepEqual(readdirSync(instances).sort(), [...mine, ...others].map((d) => basename(d)).sort());
});
