import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { copyFileSparse } from '../../../src/store/sparse-copy.js';

const MiB = 1024 * 1024;

test('copyFileSparse: the same bytes, holes where the source has zeros, whatever the alignment', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-sparse-copy-'));
  try {
    const src = join(dir, 'src');
    const fd = openSync(src, 'w');
    // Data astride a 1 MiB read, an unaligned short write, zeros written out (not a hole), and a last partial block.
    ftruncateSync(fd, 40 * MiB + 123);
    writeSync(fd, Buffer.alloc(8192, 7), 0, 8192, MiB - 4096);
    writeSync(fd, 'x', 17 * MiB + 3);
    writeSync(fd, Buffer.alloc(2 * MiB), 0, 2 * MiB, 20 * MiB);
    writeSync(fd, 'end', 40 * MiB + 120);
    closeSync(fd);
    const dest = join(dir, 'dest');
    copyFileSparse(src, dest);
    assert.equal(readFileSync(dest).equals(readFileSync(src)), true);
    assert.equal(statSync(dest).size, 40 * MiB + 123);
    assert.ok(statSync(dest).blocks * 512 <= 64 * 1024, `${statSync(dest).blocks * 512} bytes on disk`);
    // Dense data stays dense; a file that ends in a hole keeps its length.
    writeFileSync(join(dir, 'dense'), Buffer.alloc(3 * MiB + 5, 1));
    copyFileSparse(join(dir, 'dense'), join(dir, 'dense2'));
    assert.equal(readFileSync(join(dir, 'dense2')).equals(readFileSync(join(dir, 'dense'))), true);
    // dest must not exist: nothing is overwritten.
    assert.throws(() => copyFileSparse(src, dest), /EEXIST/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
