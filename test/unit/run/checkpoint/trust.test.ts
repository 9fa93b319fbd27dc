import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import type { SshConnection } from '../../../../src/executors/ssh/connection.js';
import { fetchCheckpoint } from '../../../../src/executors/ssh/job-move.js';
import { isVmwuError } from '../../../../src/errors.js';
import { CHECKPOINT_FORMAT, readCheckpoint, type CheckpointRecord } from '../../../../src/run/checkpoint/format.js';
import { checkpointMismatch, verifyCheckpointFiles, type JobTerms } from '../../../../src/run/checkpoint/trust.js';
import { insertCheckpoint, listCheckpoints, poolOrigin } from '../../../../src/run/checkpoint/records.js';
import { openStore } from '../../../../src/store/store.js';
import type { Digest } from '../../../../src/store/blobs.js';

/**
 * A checkpoint from another host is untrusted input (issue: a hostile SSH pool
 * host answered `stopped` with forged checkpoints). Each attack the reviewer
 * made is reproduced here on a checkpoint directory made by hand with real
 * qemu-img, and must be refused.
 */
const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
const MiB = 1024 ** 2;

const terms: JobTerms = {
  memoryMiB: 256, cpus: 1, network: false, timeoutMs: 60_000, maxOutputBytes: MiB,
  image: { kernel: d('a'), initrd: d('b'), root: d('c'), virtualSize: 64 * MiB, cmdline: 'console=hvc0' },
  datasets: [{ digest: d('e'), diskBytes: 64 * 1024 ** 3 }], app: false,
};

const record = (over: Partial<CheckpointRecord> = {}, vm: Partial<CheckpointRecord['vm']> = {}): CheckpointRecord => ({
  format: CHECKPOINT_FORMAT, id: 'ck-0123456789ab', runId: 'abcdef012345', createdAt: '2026-12-04T00:00:00.000Z', qemu: 'qemu 7.2 test', stopped: true, bytes: 1, saveMs: 5,
  vm: {
    accel: 'tcg', memoryMiB: 256, cpus: 1, kernel: d('a'), initrd: d('b'), cmdline: 'console=hvc0', network: false, cpuModel: 'max',
    disks: [
      { id: 'root', file: 'root.qcow2', format: 'qcow2', serial: 'vmwu-root', readOnly: false },
      { id: 'in', file: 'in.img', format: 'raw', serial: 'vmwu-in', readOnly: true },
      { id: 'out', file: 'out.img', format: 'raw', serial: 'vmwu-out', readOnly: false },
      { id: 'data0', file: 'data0.qcow2', format: 'qcow2', serial: 'vmwu-data0', readOnly: true },
    ],
    ...vm,
  },
  image: { root: d('c'), virtualSize: 64 * MiB },
  logged: { stdout: 0, stderr: 0 },
  data: [{ name: 'db', digest: d('e') }],
  job: { argv: ['true'], params: {}, timeoutMs: 60_000, elapsedMs: 1000, maxOutputBytes: MiB },
  ...over,
});

const img = (path: string, format: 'qcow2' | 'raw', size: number, ...opts: string[]) => execFileSync('qemu-img', ['create', '-q', '-f', format, ...opts, path, String(size)]);

/** A checkpoint as vmwu writes one: standalone overlays, a raw input and output disk, a small state. */
function checkpointDir(rec = record()): string {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-cktrust-'));
  writeFileSync(join(dir, 'checkpoint.json'), JSON.stringify(rec));
  writeFileSync(join(dir, 'state'), Buffer.alloc(100_000, 1));
  img(join(dir, 'root.qcow2'), 'qcow2', 64 * MiB);
  img(join(dir, 'data0.qcow2'), 'qcow2', 64 * 1024 ** 3);
  writeFileSync(join(dir, 'in.img'), 'inputs');
  writeFileSync(join(dir, 'out.img'), '');
  truncateSync(join(dir, 'out.img'), MiB + 64 * MiB);
  return dir;
}

const refused = (why: RegExp) => (e: unknown) => (isVmwuError(e) && e.code === 'BAD_CHECKPOINT' && why.test(e.message)) || assert.fail(String(e));

test('the job\'s own record decides: network, memory, CPUs, walltime, image, datasets, disks', () => {
  const host = { accel: 'tcg' as const, cpuModel: 'max' };
  assert.equal(checkpointMismatch(record(), terms, host), undefined, 'the job\'s own checkpoint');
  const attacks: [Partial<CheckpointRecord>, Partial<CheckpointRecord['vm']>, RegExp][] = [
    [{}, { network: true }, /network/],
    [{}, { memoryMiB: 1024 * 1024 }, /memory/],
    [{}, { cpus: 1024 }, /CPU count/],
    [{}, { kernel: d('f') }, /kernel/],
    [{ image: { root: d('f'), virtualSize: 64 * MiB } }, {}, /image/],
    [{ data: [{ name: 'db', digest: d('9') }] }, {}, /datasets/],
    [{ data: [] }, {}, /datasets/],
    [{ job: { ...record().job, timeoutMs: 9e9 } }, {}, /walltime/],
    [{ job: { ...record().job, elapsedMs: 9e9 } }, {}, /elapsed/],
    [{}, { disks: record().vm.disks.map((x) => (x.id === 'out' ? { ...x, format: 'qcow2' as const, file: 'out.qcow2' } : x)) }, /disks/],
    [{}, { disks: record().vm.disks.map((x) => (x.id === 'in' ? { ...x, readOnly: false } : x)) }, /disks/],
    [{}, { accel: 'kvm' }, /kvm/],
    [{}, { cpuModel: 'host' }, /CPU model/],
  ];
  for (const [over, vm, why] of attacks) {
    const got = checkpointMismatch(record(over, vm), terms, host);
    assert.ok(got && why.test(got), `${JSON.stringify({ ...over, ...vm })}: ${got}`);
  }
});

test('a checkpoint\'s files stand alone, of the job\'s formats and sizes: backing files, data files and sparse giants are refused', async () => {
  await verifyCheckpointFiles(checkpointDir(), record(), terms);

  // The overlay reads a file of the host that restores it.
  const secret = join(mkdtempSync(join(tmpdir(), 'vmwu-secret-')), 'secret.txt');
  writeFileSync(secret, 'the host\'s secret');
  let dir = checkpointDir();
  img(join(dir, 'root.qcow2'), 'qcow2', 64 * MiB, '-b', secret, '-F', 'raw');
  await assert.rejects(verifyCheckpointFiles(dir, record(), terms), refused(/backing file/));

  // The dataset overlay writes (or reads) the host's file as its data.
  const victim = join(mkdtempSync(join(tmpdir(), 'vmwu-victim-')), 'victim.txt');
  dir = checkpointDir();
  img(join(dir, 'data0.qcow2'), 'qcow2', 64 * 1024 ** 3, '-o', `data_file=${victim}`);
  // qemu-img made the data file; the victim's own file is what stands there when the checkpoint arrives.
  writeFileSync(victim, 'precious');
  await assert.rejects(verifyCheckpointFiles(dir, record(), terms), refused(/data file/));
  assert.equal(readFileSync(victim, 'utf8'), 'precious');

  // A 2 TiB state in a few bytes of stream.
  dir = checkpointDir();
  truncateSync(join(dir, 'state'), 2 * 1024 ** 4);
  await assert.rejects(verifyCheckpointFiles(dir, record(), terms), refused(/state: .* more than a VM of 256 MiB/));

  // A root disk of another size than the job's, an output disk larger than its cap.
  dir = checkpointDir();
  img(join(dir, 'root.qcow2'), 'qcow2', 1024 ** 4);
  await assert.rejects(verifyCheckpointFiles(dir, record(), terms), refused(/root.qcow2: a disk of/));
  dir = checkpointDir();
  truncateSync(join(dir, 'out.img'), 1024 ** 4);
  await assert.rejects(verifyCheckpointFiles(dir, record(), terms), refused(/out.img: a disk of .* more than/));
  assert.ok(statSync(secret).size > 0);
});

test('a RAM file of its own is exactly the job\'s RAM, a regular file, beside a state of devices alone', async () => {
  const withMemory = () => {
    const dir = checkpointDir(record({ memory: 'memory' }));
    writeFileSync(join(dir, 'memory'), 'guest page');
    truncateSync(join(dir, 'memory'), 256 * MiB);
    writeFileSync(join(dir, 'state'), Buffer.alloc(70_000, 1));
    return dir;
  };
  await verifyCheckpointFiles(withMemory(), record({ memory: 'memory' }), terms);
  let dir = withMemory();
  truncateSync(join(dir, 'memory'), 1024 ** 4);
  await assert.rejects(verifyCheckpointFiles(dir, record({ memory: 'memory' }), terms), refused(/memory: .* the job's RAM is 268435456/));
  dir = withMemory();
  truncateSync(join(dir, 'memory'), MiB);
  await assert.rejects(verifyCheckpointFiles(dir, record({ memory: 'memory' }), terms), refused(/memory: 1048576 bytes/));
  dir = withMemory();
  rmSync(join(dir, 'memory'));
  symlinkSync('/dev/zero', join(dir, 'memory'));
  await assert.rejects(verifyCheckpointFiles(dir, record({ memory: 'memory' }), terms), refused(/memory: missing or not a regular file/));
  // With the RAM in its file, a state the size of the RAM is not a device state.
  dir = withMemory();
  truncateSync(join(dir, 'state'), 200 * MiB);
  await assert.rejects(verifyCheckpointFiles(dir, record({ memory: 'memory' }), terms), refused(/state: .* more than/));
});

test('dates and text in a record: an ISO date and printable text, or the record is refused', () => {
  for (const [over, field] of [
    [{ createdAt: '9999-12-31T23:59:59.999Z\u001b]0;pwned\u0007' }, /createdAt/],
    [{ createdAt: 'yesterday' }, /createdAt/],
    [{ qemu: 'qemu \u001b[2J' }, /qemu/],
  ] as [Partial<CheckpointRecord>, RegExp][]) {
    const dir = checkpointDir(record(over));
    assert.throws(() => readCheckpoint(dir), (e: unknown) => isVmwuError(e) && e.code === 'BAD_CHECKPOINT' && field.test(e.message), String(field));
  }
  const old = checkpointDir({ ...record(), format: 1 } as unknown as CheckpointRecord);
  assert.throws(() => readCheckpoint(old), (e: unknown) => isVmwuError(e) && /format 1/.test(e.message) && /older vmwu/.test(e.hint ?? ''));
});

test('a checkpoint from a pool host is dated by the receiver, and marked as the host\'s', () => {
  const store = openStore(mkdtempSync(join(tmpdir(), 'vmwu-ckdate-')));
  try {
    const before = new Date().toISOString();
    insertCheckpoint(store.db, { ...record({ createdAt: '9999-12-31T23:59:59.999Z' }), blobs: [] }, '/x', null, poolOrigin('h1'));
    insertCheckpoint(store.db, { ...record({ id: 'ck-aaaaaaaaaaaa', createdAt: '2026-01-01T00:00:00.000Z' }), blobs: [] }, '/y');
    const [mine, theirs] = listCheckpoints(store.db);
    assert.equal(mine!.origin, 'local');
    assert.equal(mine!.createdAt, '2026-01-01T00:00:00.000Z', 'this store\'s own keep their date');
    assert.equal(theirs!.origin, 'host:h1');
    assert.ok(theirs!.createdAt >= before && theirs!.createdAt < '9999', `the host's date is not believed: ${theirs!.createdAt}`);
  } finally {
    store.close();
  }
});

/** A pool host that answers `fetch-checkpoint` with the checkpoint in `dir`, as a sparse tar: what a hostile host controls. */
function hostSending(dir: string): SshConnection {
  return {
    target: { name: 'h1' },
    async exec(_args: string[], o: { stdout?: Writable } = {}) {
      const tar = spawn('tar', ['--sparse', '-cf', '-', '-C', dir, ...readdirSync(dir)]);
      await pipeline(tar.stdout, o.stdout!, { end: false });
      o.stdout!.end();
      return { code: 0, stdout: Buffer.alloc(0), stderr: '' };
    },
  } as unknown as SshConnection;
}

test('the submitter refuses what a hostile pool host sends as a checkpoint, and keeps nothing of it', async () => {
  const home = mkdtempSync(join(tmpdir(), 'vmwu-ckfetch-'));
  const store = openStore(home);
  try {
    const fetch = (dir: string) => fetchCheckpoint(store, hostSending(dir), {
      job: 'e.1.1.abc', checkpoint: 'ck-0123456789ab', maxBytes: 64 * MiB, terms, attemptOf: { experiment: 'e', job: 1, attempt: 1 },
    });
    const nothingKept = () => {
      assert.deepEqual(listCheckpoints(store.db), []);
      assert.deepEqual(existsSync(store.paths.checkpoints) ? readdirSync(store.paths.checkpoints) : [], []);
    };
    await assert.rejects(fetch(checkpointDir(record({}, { network: true }))), refused(/host h1: .* network/));
    nothingKept();
    const giant = checkpointDir();
    truncateSync(join(giant, 'state'), 2 * 1024 ** 4);
    await assert.rejects(fetch(giant), refused(/state: .* more than a VM of 256 MiB/));
    nothingKept();
    const rec = await fetch(checkpointDir(record({ createdAt: '9999-12-31T23:59:59.999Z' })));
    const [row] = listCheckpoints(store.db);
    assert.equal(row!.id, rec.id);
    assert.equal(row!.origin, 'host:h1');
    assert.ok(row!.createdAt < '9999', 'dated by the submitter');
  } finally {
    store.close();
  }
});
