import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { aptListsDir, baseAptLists, parseDebugfsLs, pruneAptLists } from '../../../src/base/apt-lists.js';
import type { Base } from '../../../src/store/bases.js';
import { openStore } from '../../../src/store/store.js';

test('debugfs\'s parseable listing gives names, modes and sizes', () => {
  const out = 'debugfs 1.47.0 (5-Feb-2023)\n/2/040755/0/0/./4096/\n/12/100644/0/0/x_Packages/50060337/\n/13/120777/0/0/link/12/\n';
  assert.deepEqual(parseDebugfsLs(out), [{ mode: 0o40755, name: '.', size: 4096 }, { mode: 0o100644, name: 'x_Packages', size: 50060337 }, { mode: 0o120777, name: 'link', size: 12 }]);
});

test('a base\'s lists are read from its image once, regular files with apt\'s names only, and go with the base at gc', async () => {
  const root = mkdtempSync(join(tmpdir(), 'vmwu-apt-lists-'));
  try {
    // A root image as a base has one: ext4 made by mke2fs -d, in a qcow2 blob.
    const tree = join(root, 'tree');
    const lists = join(tree, 'var', 'lib', 'apt', 'lists');
    mkdirSync(join(lists, 'partial'), { recursive: true });
    writeFileSync(join(lists, 'deb.example_debian_dists_x_main_binary-amd64_Packages'), 'Package: jq\nVersion: 1\n');
    writeFileSync(join(lists, 'deb.example_debian_dists_x_InRelease'), 'signed\n');
    writeFileSync(join(lists, 'lock'), '');
    writeFileSync(join(root, 'host-secret'), 'of the host');
    // What a hostile image could put there: a link out of the image, a name no list has.
    symlinkSync(join(root, 'host-secret'), join(lists, 'evil_Packages'));
    writeFileSync(join(lists, 'odd name_Packages'), 'Package: x\n');
    const raw = join(root, 'root.raw');
    execFileSync('mke2fs', ['-q', '-t', 'ext4', '-d', tree, raw, '16M']);
    const store = openStore(join(root, 'store'));
    const digest = `sha256:${'a'.repeat(64)}`;
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', raw, store.blobs.path(digest as Base['root'])]);
    const base = { name: 'fake', root: digest, packageManager: 'apt' } as Base;
    const work = mkdtempSync(join(root, 'work-'));
    const kept = await baseAptLists(store, base, work);
    const dir = aptListsDir(store, base);
    assert.equal(kept?.dir, dir);
    const packages = 'deb.example_debian_dists_x_main_binary-amd64_Packages';
    assert.deepEqual(kept.packagesFiles, [packages]);
    assert.equal(readFileSync(join(dir, packages), 'utf8'), 'Package: jq\nVersion: 1\n');
    assert.deepEqual(readdirSync(dir).filter((n) => !n.startsWith('vmwu-universe')).sort(), ['deb.example_debian_dists_x_InRelease', packages]);
    assert.deepEqual([...kept.universe.stanzas.keys()], ['jq'], 'indexed, and the index kept beside them');
    assert.deepEqual(readdirSync(work), [], 'the raw copy of the image is gone');
    rmSync(raw);
    assert.equal((await baseAptLists(store, base, mkdtempSync(join(root, 'work-'))))?.dir, dir, 'read once: later builds take the kept copy');
    assert.equal(await baseAptLists(store, { ...base, packageManager: 'apk' } as Base, work), null);
    // An image whose lists were cleaned away (as container images' are): nothing to cut, and it is not read again.
    const bare = join(root, 'bare');
    mkdirSync(join(bare, 'var', 'lib', 'apt', 'lists', 'partial'), { recursive: true });
    execFileSync('mke2fs', ['-q', '-t', 'ext4', '-d', bare, raw, '16M']);
    const bareDigest = `sha256:${'b'.repeat(64)}`;
    execFileSync('qemu-img', ['convert', '-O', 'qcow2', raw, store.blobs.path(bareDigest as Base['root'])]);
    const bareBase = { name: 'bare', root: bareDigest, packageManager: 'apt' } as Base;
    assert.equal(await baseAptLists(store, bareBase, mkdtempSync(join(root, 'work-'))), null);
    assert.deepEqual(readdirSync(aptListsDir(store, bareBase)), [], 'remembered as an empty dir');
    rmSync(raw);
    // No base is registered in this store: its lists are no one's.
    assert.deepEqual(pruneAptLists(store, { dryRun: true }).map((l) => l.name).sort(), ['a'.repeat(64), 'b'.repeat(64)]);
    assert.ok(existsSync(dir));
    pruneAptLists(store);
    assert.ok(!existsSync(dir));
    store.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
