import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { VmwuError } from '../../../src/errors.js';
import type { Digest } from '../../../src/store/blobs.js';
import { checkChainLink, qcow2Info, type Qcow2Info } from '../../../src/bundle/qcow.js';

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const info = (over: Partial<Qcow2Info>): Qcow2Info => ({ virtualSize: 1 << 30, backingFile: null, backingFormat: null, dataFile: null, corrupt: false, ...over });

function refused(fn: () => unknown, pattern: RegExp): VmwuError {
  let err: VmwuError | undefined;
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VmwuError);
    assert.equal(e.code, 'BAD_BUNDLE');
    assert.match(e.message, pattern);
    err = e;
    return true;
  });
  return err!;
}

describe('chain links of imported layers', () => {
  test('a layer must name exactly its parent blob, relatively, as qcow2', () => {
    const parent = d('a');
    assert.doesNotThrow(() => checkChainLink(info({ backingFile: 'a'.repeat(64), backingFormat: 'qcow2' }), 'layer 1', parent));
    assert.doesNotThrow(() => checkChainLink(info({ backingFile: 'a'.repeat(64) }), 'layer 1', parent));
    refused(() => checkChainLink(info({ backingFile: 'b'.repeat(64) }), 'layer 1', parent), /layer 1: its backing file is "b{64}", expected its parent "a{64}"/);
    refused(() => checkChainLink(info({}), 'layer 1', parent), /backing file is missing/);
    refused(() => checkChainLink(info({ backingFile: 'a'.repeat(64), backingFormat: 'raw' }), 'layer 1', parent), /backing format is raw/);
    refused(() => checkChainLink(info({ backingFile: `a${'a'.repeat(64)}` }), 'layer 1', parent), /expected its parent/);
  });

  test('an absolute backing path (older layers) is refused, not rebased, with a hint', () => {
    const e = refused(() => checkChainLink(info({ backingFile: `/home/u/.local/share/vmwu/blobs/sha256/${'a'.repeat(64)}` }), 'layer 1', d('a')),
      /absolute path .* portable layers name their parent relatively/);
    assert.match(e.hint ?? '', /rebasing the layer in place would change its digest/);
  });

  test('external data files, corrupt images and backed base roots are refused', () => {
    refused(() => checkChainLink(info({ backingFile: 'a'.repeat(64), dataFile: '/etc/shadow' }), 'layer 1', d('a')), /external data file \(\/etc\/shadow\)/);
    refused(() => checkChainLink(info({ backingFile: 'a'.repeat(64), corrupt: true }), 'layer 1', d('a')), /corrupt/);
    refused(() => checkChainLink(info({ backingFile: 'x' }), 'root', null), /base root must not have a backing file/);
    assert.doesNotThrow(() => checkChainLink(info({}), 'root', null));
  });

  test('qcow2Info reads real images without opening the backing file, and never probes the format', { skip: !hasQemuImg() && 'qemu-img is not installed' }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmwu-qcow-'));
    const hex = 'c'.repeat(64);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', hex, '-F', 'qcow2', join(dir, 'layer'), '64M']);
    const i = await qcow2Info(join(dir, 'layer'), 'layer');
    assert.deepEqual(i, { virtualSize: 64 * 1024 ** 2, backingFile: hex, backingFormat: 'qcow2', dataFile: null, corrupt: false });
    checkChainLink(i, 'layer', `sha256:${hex}`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', join(dir, hex), '-F', 'qcow2', join(dir, 'old'), '64M']);
    const old = await qcow2Info(join(dir, 'old'), 'old');
    refused(() => checkChainLink(old, 'old', `sha256:${hex}`), /absolute path/);
    writeFileSync(join(dir, 'raw'), Buffer.alloc(4096));
    await assert.rejects(qcow2Info(join(dir, 'raw'), 'layer 2'), (e: unknown) => e instanceof VmwuError && e.code === 'BAD_BUNDLE' && /layer 2 is not a readable qcow2 image/.test(e.message));
  });

  test('qcow2Info refuses an external data file from the header, before qemu-img opens it', { skip: !hasQemuImg() && 'qemu-img is not installed' }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmwu-qcow-'));
    const data = join(dir, 'data');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${data},data_file_raw=on`, join(dir, 'layer'), '1M']);
    // A FIFO in its place: anything that opened it for reading would wait for a writer.
    rmSync(data);
    execFileSync('mkfifo', [data]);
    await assert.rejects(qcow2Info(join(dir, 'layer'), 'layer 3'),
      (e: unknown) => e instanceof VmwuError && e.code === 'BAD_BUNDLE' && e.message === `layer 3: the image has an external data file (${data}); vmwu layers never do`);
  });
});

function hasQemuImg(): boolean {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
