import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { makeEmptyExt4, runDebugfs, settleExt4 } from '../../../src/oci/debugfs.js';
import { FsTree } from '../../../src/oci/fs-tree.js';
import { layerScript, type LayerEntry } from '../../../src/oci/layer-script.js';

const dir = mkdtempSync(join(tmpdir(), 'vmwu-layer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function entry(name: string, type: LayerEntry['type'], more: Partial<LayerEntry> = {}): LayerEntry {
  const e: LayerEntry = { name, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 1_700_000_000, xattrs: new Map(), ...more };
  if (type === 'file' && !e.content) {
    e.content = join(dir, `c${++n}`);
    writeFileSync(e.content, `content of ${name}\n`);
  }
  return e;
}

/** Applies layers in order to a fresh ext4 with the real debugfs and e2fsck, as the converter does. */
async function apply(layers: LayerEntry[][]): Promise<string> {
  const img = join(dir, `img${++n}.raw`);
  await makeEmptyExt4(img, 64 * 1024 ** 2, '11111111-2222-4333-8444-555555555555');
  const tree = new FsTree();
  tree.add(['lost+found'], 'dir');
  for (const [i, entries] of layers.entries()) {
    const script = join(dir, `s${++n}`);
    writeFileSync(script, layerScript(tree, { entries, layer: `layer ${i + 1}`, valueFile: (v) => { const f = join(dir, `x${++n}`); writeFileSync(f, v); return f; } }).join('\n') + '\n');
    await runDebugfs(img, script, `layer ${i + 1}`);
    await settleExt4(img, `layer ${i + 1}`);
  }
  // A clean check: nothing debugfs did is left for e2fsck to fix.
  execFileSync('e2fsck', ['-fn', img], { stdio: 'ignore' });
  return img;
}

/** `ls -p` of a path in the image: name → [mode, uid, gid]. */
function ls(img: string, path: string): Map<string, [string, string, string]> {
  const out = execFileSync('debugfs', ['-R', `ls -p "${path}"`, img], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const m = new Map<string, [string, string, string]>();
  for (const l of out.split('\n')) {
    const f = l.split('/');
    if (f.length >= 7 && f[5] !== '.' && f[5] !== '..') m.set(f[5]!, [f[2]!, f[3]!, f[4]!]);
  }
  return m;
}

const cat = (img: string, path: string) => execFileSync('debugfs', ['-R', `cat "${path}"`, img], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();

test('a later layer deletes a file, hides a directory opaquely and replaces a directory with a file (OCI whiteouts)', async () => {
  const img = await apply([
    [entry('etc/', 'dir'), entry('etc/gone', 'file'), entry('etc/kept', 'file'), entry('d/', 'dir'), entry('d/x', 'file'), entry('o/', 'dir'), entry('o/old', 'file'), entry('o/sub/', 'dir'), entry('o/sub/deep', 'file')],
    [entry('etc/.wh.gone', 'file'), entry('d', 'file'), entry('o/.wh..wh..opq', 'file'), entry('o/new', 'file')],
  ]);
  assert.deepEqual([...ls(img, '/etc').keys()].sort(), ['kept']);
  assert.equal(ls(img, '/').get('d')![0], '100644', 'd is now a file');
  assert.equal(cat(img, '/d'), 'content of d\n');
  assert.deepEqual([...ls(img, '/o').keys()].sort(), ['new'], 'the opaque directory keeps only this layer\'s entries');
});

test('owners, modes, set-uid bits, devices, fifos, symlinks, hard links and binary xattrs are kept', async () => {
  const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x80, 0x20, 0x00, 0x00, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const img = await apply([[
    entry('bin/', 'dir'), entry('bin/tool', 'file', { mode: 0o4755, uid: 1000, gid: 50, xattrs: new Map([['security.capability', cap], ['user.note', Buffer.from('hi')]]) }),
    entry('bin/again', 'link', { linkname: 'bin/tool' }), entry('bin/sh', 'symlink', { linkname: 'tool' }),
    entry('dev/', 'dir'), entry('dev/null', 'char', { mode: 0o666, devmajor: 1, devminor: 3 }), entry('dev/fifo', 'fifo', { mode: 0o600 }),
  ]]);
  const bin = ls(img, '/bin');
  assert.deepEqual(bin.get('tool'), ['104755', '1000', '50']);
  assert.deepEqual(bin.get('sh')?.[0], '120777');
  const stat = execFileSync('debugfs', ['-R', 'stat /bin/again', img], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  assert.match(stat, /Links: 2/, 'the hard link shares the inode, counted');
  const ea = execFileSync('debugfs', ['-R', 'ea_get -x /bin/tool security.capability', img], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  assert.match(ea.replace(/\s/g, ''), /0100000280200000ff/i, 'the capability\'s bytes, 0x80 and 0xff included');
  assert.deepEqual(ls(img, '/dev').get('null'), ['020666', '0', '0']);
  assert.deepEqual(ls(img, '/dev').get('fifo')?.[0], '010600');
});

test('an entry below a symlinked directory lands where the link points, inside the root', async () => {
  const img = await apply([[entry('usr/', 'dir'), entry('usr/lib/', 'dir'), entry('lib', 'symlink', { linkname: '/usr/lib' })], [entry('lib/libx.so', 'file')]]);
  assert.ok(ls(img, '/usr/lib').has('libx.so'));
});

test('names that climb out, absolute paths, links out of the root and hard links to nothing are refused, naming the layer and entry', () => {
  const refuse = (entries: LayerEntry[], re: RegExp) => assert.throws(() => layerScript(new FsTree(), { entries, layer: 'layer 3 (sha256:abc)', valueFile: () => '' }), (e: Error) => re.test(e.message) && e.message.startsWith('layer 3 (sha256:abc): entry'));
  refuse([entry('a/../../etc/passwd', 'file')], /climbs out/);
  refuse([entry('/etc/passwd', 'file')], /absolute path/);
  refuse([entry('a/', 'dir'), entry('a/evil', 'symlink', { linkname: '../../etc/shadow' })], /link out of the root/);
  refuse([entry('x', 'link', { linkname: 'nowhere' })], /does not hold/);
  refuse([entry('bad\nname', 'file')], /control character/);
});
