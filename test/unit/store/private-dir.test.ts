import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { nodeBlobCache } from '../../../src/run/blob-source.js';
import { openNodeDirs } from '../../../src/run/node-dirs.js';
import { chmodDirNoFollow, ensurePrivateDir } from '../../../src/store/private-dir.js';
import { digestFile } from '../../../src/store/blobs.js';

/**
 * vmwu's per-user scratch under a directory every user can write (/tmp): the
 * attacks of another local user, reproduced. Those that need a second user run
 * as root and make `nobody` the other user.
 */
const root = process.geteuid?.() === 0;
const nobody = 65534;
const base = () => {
  const b = mkdtempSync(join(tmpdir(), 'vmwu-priv-'));
  chmodSync(b, 0o1777);
  return b;
};
const unsafe = (why: RegExp) => (e: unknown) => (isVmwuError(e) && e.code === 'UNSAFE_DIR' && why.test(e.message)) || assert.fail(String(e));

test('made fresh: owned by this user, closed to others', () => {
  const dir = join(base(), `vmwu-${process.getuid!()}`);
  ensurePrivateDir(dir);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  ensurePrivateDir(dir);
  chmodSync(dir, 0o755);
  ensurePrivateDir(dir);
  assert.equal(statSync(dir).mode & 0o777, 0o700, 'one of ours left open (an older vmwu) is closed');
  chmodSync(dir, 0o711);
  ensurePrivateDir(dir);
  assert.equal(statSync(dir).mode & 0o777, 0o711, 'passing through (QEMU\'s user, when vmwu is root) is allowed');
});

test('another user\'s directory in its place is refused, naming the owner; so is a template planted in it', { skip: !root && 'needs root to act as a second user' }, () => {
  const b = base();
  const planted = join(b, `vmwu-${process.getuid!()}`);
  mkdirSync(join(planted, 'cache', 'templates', 'f'.repeat(32)), { recursive: true });
  writeFileSync(join(planted, 'cache', 'templates', 'f'.repeat(32), 'template.json'), '{}');
  execFileSync('chown', ['-R', `${nobody}:${nobody}`, planted]);
  chmodSync(planted, 0o777);
  assert.throws(() => ensurePrivateDir(planted), unsafe(/belongs to uid 65534, not to/));
  assert.throws(() => openNodeDirs(undefined, '/nonexistent-store', { VMWU_SCRATCH: b }), unsafe(/belongs to uid 65534/));
});

test('a link in its place is refused, and no chmod lands on what it points at', () => {
  const b = base();
  const victim = mkdtempSync(join(tmpdir(), 'vmwu-victim-'));
  chmodSync(victim, 0o700);
  symlinkSync(victim, join(b, `vmwu-${process.getuid!()}`));
  assert.throws(() => ensurePrivateDir(join(b, `vmwu-${process.getuid!()}`)), unsafe(/symbolic link \(to .*vmwu-victim-/));
  assert.throws(() => chmodDirNoFollow(join(b, `vmwu-${process.getuid!()}`), 0o711), unsafe(/symbolic link/));
  assert.equal(statSync(victim).mode & 0o777, 0o700, 'the link\'s target keeps its mode');
});

test('a parent every user can write without the sticky bit is refused: anyone could swap the directory', () => {
  const b = mkdtempSync(join(tmpdir(), 'vmwu-priv-'));
  chmodSync(b, 0o777);
  assert.throws(() => ensurePrivateDir(join(b, 'vmwu-x')), (e: unknown) => isVmwuError(e) && /no sticky bit/.test(e.message));
});

test('nobody else can rename an instance directory inside it', { skip: !root && 'needs root to act as a second user' }, () => {
  const b = base();
  const dirs = openNodeDirs(undefined, '/nonexistent-store', { VMWU_SCRATCH: b });
  mkdirSync(join(dirs.instances, 'abc'), { mode: 0o700 });
  assert.throws(() => execFileSync('setpriv', [`--reuid=${nobody}`, `--regid=${nobody}`, '--clear-groups', 'mv', join(dirs.instances, 'abc'), join(dirs.instances, 'abd')], { stdio: 'pipe' }));
  assert.throws(() => execFileSync('setpriv', [`--reuid=${nobody}`, `--regid=${nobody}`, '--clear-groups', 'ls', dirs.instances], { stdio: 'pipe' }));
});

test('a cached blob another user could have written is not trusted by its name: it is copied and hashed again', { skip: !root && 'needs root to act as a second user' }, async () => {
  const b = base();
  const dirs = openNodeDirs(undefined, '/nonexistent-store', { VMWU_SCRATCH: b });
  const storeBlobs = mkdtempSync(join(tmpdir(), 'vmwu-blobs-'));
  const good = join(storeBlobs, 'x');
  writeFileSync(good, 'the real initrd');
  const digest = await digestFile(good);
  const hex = digest.slice(7);
  execFileSync('mv', [good, join(storeBlobs, hex)]);
  const cache = nodeBlobCache(storeBlobs, dirs.cache);
  const path = await cache.path(digest);
  // As root on a node, what another user left there under the digest's name.
  writeFileSync(path, 'a planted initrd');
  chownSync(path, nobody, nobody);
  const again = await nodeBlobCache(storeBlobs, dirs.cache).path(digest);
  assert.equal(statSync(again).uid, process.getuid!());
  assert.equal(execFileSync('cat', [again], { encoding: 'utf8' }), 'the real initrd');
});
