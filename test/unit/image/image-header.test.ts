import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { HeaderError, parseQcow2Header, sniffFormat, standaloneProblem } from '../../../src/image/image-header.js';

const dir = mkdtempSync(join(tmpdir(), 'vmwu-header-'));
/** A real qcow2 made by qemu-img, as the bytes vmwu reads. */
function qcow2(name: string, args: string[]): Buffer {
  const path = join(dir, name);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...args, path, '1M']);
  return readFileSync(path);
}
const at = (offset: number, bytes: string | number[], total = 512) => {
  const b = Buffer.alloc(total);
  Buffer.from(bytes as string, 'latin1').copy(b, offset);
  return b;
};

describe('the format from the first bytes', () => {
  test('qcow2 v2 and v3 are qcow2; qcow v1 is another format', () => {
    assert.deepEqual(sniffFormat(qcow2('v3', []), 'disk'), { kind: 'format', format: 'qcow2' });
    assert.deepEqual(sniffFormat(qcow2('v2', ['-o', 'compat=0.10']), 'disk'), { kind: 'format', format: 'qcow2' });
    assert.deepEqual(sniffFormat(at(0, 'QFI\xfb\0\0\0\x01'), 'old.img'), { kind: 'other', format: 'qcow version 1' });
  });

  test('descriptor and other formats are named, whatever the file is called', () => {
    const vmdkText = Buffer.from('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\nRW 100 FLAT "/etc/shadow" 0\n');
    assert.deepEqual(sniffFormat(vmdkText, 'disk.img'), { kind: 'other', format: 'vmdk (descriptor)' });
    assert.deepEqual(sniffFormat(at(0, 'KDMV'), 'x.qcow2'), { kind: 'other', format: 'vmdk' });
    assert.deepEqual(sniffFormat(at(0, 'vhdxfile'), 'x'), { kind: 'other', format: 'vhdx' });
    assert.deepEqual(sniffFormat(at(0, 'conectix'), 'x'), { kind: 'other', format: 'vpc (VHD)' });
    assert.deepEqual(sniffFormat(at(0x40, [0x7f, 0x10, 0xda, 0xbe]), 'x'), { kind: 'other', format: 'vdi' });
    assert.deepEqual(sniffFormat(at(0, 'QED\0'), 'x'), { kind: 'other', format: 'qed' });
  });

  test('anything else is raw, unless its name claims another format', () => {
    const mbr = at(510, [0x55, 0xaa]);
    assert.deepEqual(sniffFormat(mbr, 'disk.img'), { kind: 'format', format: 'raw' });
    assert.deepEqual(sniffFormat(mbr, 'disk.raw'), { kind: 'format', format: 'raw' });
    assert.deepEqual(sniffFormat(Buffer.alloc(0), 'disk'), { kind: 'format', format: 'raw' });
    assert.deepEqual(sniffFormat(mbr, 'disk.VMDK'), { kind: 'ambiguous', why: 'it is named .vmdk but does not start with a vmdk header' });
    assert.equal(sniffFormat(mbr, 'disk.qcow2').kind, 'ambiguous');
  });
});

describe('qcow2 headers', () => {
  test('a plain image stands alone', () => {
    for (const [name, args] of [['plain3', []], ['plain2', ['-o', 'compat=0.10']], ['zstd', ['-o', 'compression_type=zstd']]] as const) {
      const h = parseQcow2Header(qcow2(name, [...args]));
      assert.equal(h.virtualSize, 1024 * 1024, name);
      assert.equal(h.backingFile, null, name);
      assert.equal(h.dataFile, null, name);
      assert.equal(standaloneProblem(h), null, name);
    }
  });

  test('a backing file is read from the header and refused', () => {
    const h = parseQcow2Header(qcow2('backed', ['-u', '-b', '/etc/shadow', '-F', 'raw']));
    assert.equal(h.backingFile, '/etc/shadow');
    assert.match(standaloneProblem(h) ?? '', /backing file \("\/etc\/shadow"\)/);
    // Also when the name is a json: node graph, which would let QEMU open anything.
    const j = parseQcow2Header(qcow2('json', ['-u', '-b', 'json:{"driver":"file","filename":"/etc/shadow"}', '-F', 'raw']));
    assert.match(standaloneProblem(j) ?? '', /backing file \("json:/);
  });

  test('an external data file is read from the header and refused, even without its name', () => {
    const img = qcow2('ext', ['-o', `data_file=${join(dir, 'data')}`, '-o', 'data_file_raw=on']);
    const h = parseQcow2Header(img);
    assert.equal(h.dataFile, join(dir, 'data'));
    assert.match(standaloneProblem(h) ?? '', /external data file/);
    // The data-file name extension removed: the feature bit alone still refuses it.
    const ext = img.indexOf(Buffer.from([0x44, 0x41, 0x54, 0x41]));
    const noName = Buffer.from(img);
    noName.writeUInt32BE(0x12345678, ext);
    assert.equal(parseQcow2Header(noName).dataFile, '');
    assert.match(standaloneProblem(parseQcow2Header(noName)) ?? '', /external data file, which/);
  });

  test('encrypted, corrupt and unknown-feature images are refused', () => {
    const img = qcow2('flags', []);
    const set = (f: (b: Buffer) => void) => { const b = Buffer.from(img); f(b); return standaloneProblem(parseQcow2Header(b)); };
    assert.match(set((b) => b.writeUInt32BE(1, 32)) ?? '', /encrypted/);
    assert.match(set((b) => b.writeBigUInt64BE(2n, 72)) ?? '', /corrupt/);
    assert.match(set((b) => b.writeBigUInt64BE(1n << 40n, 72)) ?? '', /unknown to vmwu \(bits 0x10000000000\)/);
    assert.equal(set((b) => b.writeBigUInt64BE(1n, 72)), null, 'the dirty bit alone is harmless for a read-only open');
  });

  test('malformed headers are errors, not guesses', () => {
    const img = qcow2('bad', []);
    const bad = (f: (b: Buffer) => void, pattern: RegExp) => {
      const b = Buffer.from(img);
      f(b);
      assert.throws(() => parseQcow2Header(b), (e: unknown) => e instanceof HeaderError && pattern.test(e.message));
    };
    bad((b) => b.write('XXXX', 0), /qcow2 magic/);
    bad((b) => b.writeUInt32BE(7, 4), /version 7/);
    bad((b) => b.writeUInt32BE(40, 20), /cluster_bits 40/);
    bad((b) => b.writeUInt32BE(90, 100), /header_length 90/);
    assert.throws(() => parseQcow2Header(img.subarray(0, 80)), /cut short/);
    // A header extension whose length runs past the first cluster.
    const ext = Buffer.from(img);
    const first = img.readUInt32BE(100);
    ext.writeUInt32BE(0x6803f857, first);
    ext.writeUInt32BE(0x7fffffff, first + 4);
    assert.throws(() => parseQcow2Header(ext), /runs past the first cluster/);
  });
});
