import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyBack, linkStaysInside, snapshotMount } from '../../../src/docker/copy-back.js';

test('links stay inside the mount or are not written back', () => {
  assert.equal(linkStaysInside('a/b', 'c'), true);
  assert.equal(linkStaysInside('a/b', '../c'), true);
  assert.equal(linkStaysInside('a/b', '../../c'), false);
  assert.equal(linkStaysInside('b', '/etc/passwd'), false);
  assert.equal(linkStaysInside('b', '.'), true);
});

test('only what the job changed comes back, and nothing is written through a host link', async () => {
  const d = mkdtempSync(join(tmpdir(), 'vmwu-copy-back-'));
  const host = join(d, 'host');
  const guest = join(d, 'guest');
  const outside = join(d, 'outside.txt');
  mkdirSync(host);
  writeFileSync(outside, 'untouched');
  writeFileSync(join(host, 'stdout.txt'), '');
  writeFileSync(join(host, 'input.txt'), 'in');
  symlinkSync(outside, join(host, 'trap'));
  const before = await snapshotMount(host);
  // The host fills its stdout file while the job runs; the job's copy stays empty.
  writeFileSync(join(host, 'stdout.txt'), 'from the job\n');
  mkdirSync(join(guest, 'sub'), { recursive: true });
  writeFileSync(join(guest, 'stdout.txt'), '');
  writeFileSync(join(guest, 'input.txt'), 'in');
  writeFileSync(join(guest, 'trap'), 'overwritten?');
  writeFileSync(join(guest, 'sub', 'new.txt'), 'new');
  symlinkSync('../input.txt', join(guest, 'sub', 'ok'));
  symlinkSync('../../outside.txt', join(guest, 'sub', 'escape'));
  const r = await copyBack(guest, host, before);
  assert.equal(readFileSync(join(host, 'stdout.txt'), 'utf8'), 'from the job\n');
  assert.equal(readFileSync(join(host, 'sub', 'new.txt'), 'utf8'), 'new');
  assert.equal(readlinkSync(join(host, 'sub', 'ok')), '../input.txt');
  assert.equal(readFileSync(outside, 'utf8'), 'untouched');
  assert.equal(lstatSync(join(host, 'trap')).isFile(), true);
  assert.deepEqual(r.skippedLinks, ['sub/escape']);
  assert.deepEqual({ files: r.files, unchanged: r.unchanged }, { files: 3, unchanged: 2 });
});
