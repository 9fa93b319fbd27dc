import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AptLists } from '../../../src/base/apt-lists.js';
import { indexStanzas, universeOf } from '../../../src/base/apt-universe.js';
import { writePrunedLists } from '../../../src/unit/build-lists.js';

test('pruned lists hold the closure\'s stanzas byte for byte, every Packages file (empty too) and the Release files as they are', () => {
  const root = mkdtempSync(join(tmpdir(), 'vmwu-build-lists-'));
  try {
    const dir = join(root, 'lists');
    const out = join(root, 'out');
    const mainText = 'Package: jq\nVersion: 1\nMaintainer: Zoë\nDepends: libjq1\n\nPackage: gcc\nVersion: 12\n\nPackage: libjq1\nVersion: 1\n';
    const files = { 'x_main_Packages': mainText, 'x-security_main_Packages': 'Package: gcc\nVersion: 12.1\n' };
    mkdirSync(dir);
    for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t);
    writeFileSync(join(dir, 'x_InRelease'), 'signed by Debian\n');
    const lists: AptLists = {
      dir, packagesFiles: Object.keys(files), releaseFiles: ['x_InRelease'],
      universe: universeOf(Object.fromEntries(Object.entries(files).map(([n, t]) => [n, indexStanzas(Buffer.from(t).toString('latin1'))]))),
    };
    assert.deepEqual(writePrunedLists(lists, ['jq'], out), { path: out, stanzas: 2 });
    assert.equal(readFileSync(join(out, 'x_main_Packages'), 'utf8'), 'Package: jq\nVersion: 1\nMaintainer: Zoë\nDepends: libjq1\n\nPackage: libjq1\nVersion: 1\n\n');
    assert.equal(readFileSync(join(out, 'x-security_main_Packages'), 'utf8'), '', 'a suite with nothing wanted is there, empty');
    assert.equal(readFileSync(join(out, 'x_InRelease'), 'utf8'), 'signed by Debian\n');
    assert.deepEqual(readdirSync(out).sort(), ['x-security_main_Packages', 'x_InRelease', 'x_main_Packages']);
    assert.equal(writePrunedLists(lists, ['no-such'], join(root, 'none')), null);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
