import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { test } from 'node:test';
import { isVmwuError } from '../../../../src/errors.js';
import { packCheckpoint, unpackCheckpoint } from '../../../../src/run/checkpoint/transfer.js';
import { CHECKPOINT_FORMAT, readCheckpoint, type CheckpointRecord } from '../../../../src/run/checkpoint/format.js';

/**
 * Checkpoints crossing hosts (hosts drain) without a VM: a checkpoint directory
 * made by hand, packed and unpacked as the SSH executor does, and the ways a
 * hostile sender could try to get more onto the receiver's disk.
 */
const d = (c: string) => `sha256:${c.repeat(64)}`;
const record = (over: Partial<CheckpointRecord> = {}): CheckpointRecord => ({
  format: CHECKPOINT_FORMAT, id: 'ck-0123456789ab', runId: 'abcdef012345', createdAt: '2026-11-29T00:00:00.000Z', qemu: 'qemu 7.2 test', stopped: true, bytes: 1, saveMs: 5,
  vm: {
    accel: 'tcg', memoryMiB: 128, cpus: 1, kernel: d('a') as CheckpointRecord['vm']['kernel'], initrd: d('b') as CheckpointRecord['vm']['kernel'], cmdline: 'console=hvc0', network: false,
    disks: [{ id: 'root', file: 'root.qcow2', format: 'qcow2', serial: 'vmwu-root', readOnly: false }, { id: 'in', file: 'in.img', format: 'raw', serial: 'vmwu-in', readOnly: true }],
  },
  image: { root: d('c') as CheckpointRecord['vm']['kernel'], virtualSize: 1 << 30 },
  logged: { stdout: 10, stderr: 0 },
  job: { argv: ['sh', '-c', 'true'], params: {}, timeoutMs: 60_000, elapsedMs: 1000, maxOutputBytes: 1 << 20 },
  ...over,
});

function checkpointDir(rec: CheckpointRecord = record()): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-ck-'));
  writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify(rec));
  writeFileSync(join(dir, 'state'), Buffer.alloc(300_000, 7));
  writeFileSync(join(dir, 'root.qcow2'), 'overlay');
  // A clone's input disk: a few bytes of archive padded with GiBs of holes.
  writeFileSync(join(dir, 'in.img'), 'input archive');
  truncateSync(join(dir, 'in.img'), 4 * 1024 ** 3);
  return dir;
}

async function collect(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A tar of the given directory's entries, as a host could send it (held in a PassThrough: a child's unread stdout is dropped when it exits). */
function tarOf(dir: string, names: string[]): Readable {
  const out = new PassThrough();
  const tar = spawn('tar', ['--sparse', '-cf', '-', '-C', dir, ...names]);
  tar.stdout.pipe(out);
  // A refused stream is dropped by the receiver: the sender (a host, here tar) is not left blocked on a pipe nobody reads.
  out.once('close', () => tar.kill());
  return out;
}

test('a checkpoint crosses as a sparse tar: the same files, the input disk still holes', async () => {
  const src = checkpointDir();
  const wire = new PassThrough();
  const bytes = collect(wire);
  await packCheckpoint(src, wire);
  wire.end();
  const archive = await bytes;
  assert.ok(archive.length < 1024 ** 2, `only data crosses: ${archive.length} bytes for a 4 GiB sparse disk`);
  const dest = join(mkdtempSync(join(tmpdir(), 'vmwu-ck-dest-')), 'ck');
  const rec = await unpackCheckpoint(PassThrough.from([archive]), dest, { maxBytes: 10 * 1024 ** 2, id: 'ck-0123456789ab' });
  assert.equal(rec.id, 'ck-0123456789ab');
  assert.deepEqual(readdirSync(dest).sort(), ['checkpoint.json', 'in.img', 'root.qcow2', 'state']);
  assert.deepEqual(readFileSync(join(dest, 'state')), readFileSync(join(src, 'state')));
  const st = statSync(join(dest, 'in.img'));
  assert.equal(st.size, 4 * 1024 ** 3);
  assert.ok(st.blocks * 512 < 1024 ** 2, 'the holes stayed holes');
});

test('a checkpoint whose RAM is a file of its own crosses with it, sparse', async () => {
  const src = checkpointDir(record({ memory: 'memory' }));
  // 128 MiB of RAM of which the guest touched one page.
  writeFileSync(join(src, 'memory'), 'guest page');
  truncateSync(join(src, 'memory'), 128 * 1024 ** 2);
  const wire = new PassThrough();
  const bytes = collect(wire);
  await packCheckpoint(src, wire);
  wire.end();
  const archive = await bytes;
  assert.ok(archive.length < 1024 ** 2, `only touched RAM crosses: ${archive.length} bytes`);
  const dest = join(mkdtempSync(join(tmpdir(), 'vmwu-ck-dest-')), 'ck');
  const rec = await unpackCheckpoint(PassThrough.from([archive]), dest, { maxBytes: 10 * 1024 ** 2, id: 'ck-0123456789ab' });
  assert.equal(rec.memory, 'memory');
  assert.deepEqual(readdirSync(dest).sort(), ['checkpoint.json', 'in.img', 'memory', 'root.qcow2', 'state']);
  assert.equal(statSync(join(dest, 'memory')).size, 128 * 1024 ** 2);
});

test('a checkpoint record is checked: a disk file that is a path, an unknown disk id, another format', () => {
  for (const [bad, field] of [
    [record({ vm: { ...record().vm, disks: [{ id: 'root', file: '../../etc/passwd', format: 'qcow2', serial: 'vmwu-root', readOnly: false }] } }), /vm\.disks\.0\.file/],
    [record({ vm: { ...record().vm, disks: [{ id: 'kernel' as 'root', file: 'root.qcow2', format: 'qcow2', serial: 'vmwu-root', readOnly: false }] } }), /vm\.disks\.0\.id/],
    [record({ parent: '/etc/shadow' }), /parent/],
    [record({ format: 99 }), /format 99/],
    // Only the RAM file's own name; and a format 2 vmwu would load its device-only state into a VM with no RAM.
    [record({ memory: '../memory' as 'memory' }), /memory/],
    [record({ format: 2, memory: 'memory' }), /memory: a RAM file in a format 2 checkpoint/],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'vmwu-ck-bad-'));
    writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify(bad));
    assert.throws(() => readCheckpoint(dir), (e: unknown) => isVmwuError(e) && e.code === 'BAD_CHECKPOINT' && field.test(e.message), String(field));
  }
});

test('what a host sends is refused whole when it holds more than the record names, a link, or too many bytes', async () => {
  const cases: [string, (dir: string) => Readable, RegExp, number?][] = [
    ['an extra file', (dir) => {
      writeFileSync(join(dir, 'extra'), 'x');
      return tarOf(dir, ['checkpoint.json', 'state', 'root.qcow2', 'in.img', 'extra']);
    }, /unexpected entry "extra"/],
    ['a disk that is a link', (dir) => {
      const other = join(dir, 'sub');
      mkdirSync(other);
      writeFileSync(join(other, 'checkpoint.json'), readFileSync(join(dir, 'checkpoint.json')));
      writeFileSync(join(other, 'state'), 'state');
      writeFileSync(join(other, 'in.img'), 'in');
      symlinkSync('/etc/passwd', join(other, 'root.qcow2'));
      return tarOf(other, ['checkpoint.json', 'state', 'root.qcow2', 'in.img']);
    }, /unexpected entry "root.qcow2"/],
    ['a file missing', (dir) => tarOf(dir, ['checkpoint.json', 'state', 'root.qcow2']), /in\.img missing/],
    ['more than the cap', (dir) => tarOf(dir, ['checkpoint.json', 'state', 'root.qcow2', 'in.img']), /more than 100000 bytes/, 100_000],
  ];
  for (const [what, make, why, cap] of cases) {
    const parent = mkdtempSync(join(tmpdir(), 'vmwu-ck-in-'));
    await assert.rejects(unpackCheckpoint(make(checkpointDir()), join(parent, 'ck'), { maxBytes: cap ?? 10 * 1024 ** 2 }), (e: unknown) => isVmwuError(e) && why.test(e.message) || assert.fail(`${what}: ${String(e)}`));
    assert.deepEqual(readdirSync(parent), [], `${what}: nothing is left behind`);
    assert.equal(existsSync('/etc/passwd'), true);
  }
});
