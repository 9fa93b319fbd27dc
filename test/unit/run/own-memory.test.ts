import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { makeOwnMemory, ownMemoryDir, ownMemoryRoot, removeOwnMemory } from '../../../src/run/own-memory.js';

const MiB = 1024 ** 2;

test('on tmpfs with room, an instance\'s own RAM goes into its memory dir there, a sparse copy of what it starts from', async (t) => {
  if (!existsSync('/dev/shm')) return t.skip('no /dev/shm on this host');
  const scratch = mkdtempSync(join(tmpdir(), 'vmwu-ownmem-'));
  const from = join(scratch, 'template-memory');
  writeFileSync(from, 'template page');
  truncateSync(from, 64 * MiB);
  const p = { scratch, memoryDir: ownMemoryDir() };
  try {
    const file = await makeOwnMemory(p, 64, from);
    assert.equal(file, join(p.memoryDir, 'memory'));
    const st = statSync(file);
    assert.equal(st.size, 64 * MiB);
    assert.equal(st.blocks * 512, 64 * MiB - 4096, 'reserved, so a guest never meets a full tmpfs; but for a page, so cp seeks to the data');
    // What a checkpoint does with it: the reserved pages nobody wrote are holes to a sparse copy.
    const saved = join(scratch, 'saved');
    execFileSync('cp', ['--sparse=always', file, saved]);
    assert.ok(statSync(saved).blocks * 512 < MiB, `only written pages are copied: ${statSync(saved).blocks * 512} bytes`);
    assert.equal(readFileSync(file).subarray(0, 13).toString(), 'template page');
    assert.equal(statSync(p.memoryDir).mode & 0o777, 0o700);
    assert.match(basename(p.memoryDir), new RegExp(`^\\.memory-${process.pid}_\\d+-[0-9a-f]{12}$`), 'named for this process');
  } finally {
    await removeOwnMemory(p);
    rmSync(scratch, { recursive: true, force: true });
  }
  assert.equal(existsSync(p.memoryDir), false);
});

test('without a tmpfs, the RAM file goes into the instance\'s scratch dir; a boot\'s is empty and the RAM\'s size', async (t) => {
  if (statfsSync(tmpdir()).type === 0x01021994) return t.skip(`${tmpdir()} is a tmpfs itself`);
  const scratch = mkdtempSync(join(tmpdir(), 'vmwu-ownmem-'));
  // A memory dir whose filesystem is the disk's (tmpdir), not a tmpfs.
  const shm = join(scratch, 'shm');
  mkdirSync(shm);
  const p = { scratch, memoryDir: ownMemoryDir(shm) };
  try {
    const file = await makeOwnMemory(p, 16);
    assert.equal(file, join(scratch, 'memory'));
    assert.equal(statSync(file).size, 16 * MiB);
    assert.equal(statSync(file).blocks * 512, 16 * MiB - 4096, 'reserved');
    assert.equal(existsSync(p.memoryDir), false);
    await assert.rejects(makeOwnMemory(p, 16), /EEXIST/, 'never written through what stands there');
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

test('a RAM file with no room for all of it is refused before the guest runs, named NO_SPACE, and nothing is left', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('mounting a small tmpfs needs root');
  const root = mkdtempSync(join(tmpdir(), 'vmwu-ownmem-'));
  const scratch = join(root, 'scratch');
  mkdirSync(scratch);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', scratch]);
  try {
    const p = { scratch, memoryDir: ownMemoryDir(join(root, 'shm')) };
    await assert.rejects(makeOwnMemory(p, 64), (e: unknown) => isVmwuError(e) && e.code === 'NO_SPACE' && /no room for the job's RAM/.test(e.message));
    assert.deepEqual(readdirSync(scratch), []);
  } finally {
    execFileSync('umount', [scratch]);
    rmSync(root, { recursive: true, force: true });
  }
});

test('on a tmpfs: the RAM dirs of dead processes are reaped first; a private dir another user made there first is not used', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('mounting a tmpfs needs root');
  const root = mkdtempSync(join(tmpdir(), 'vmwu-ownmem-'));
  const shm = join(root, 'shm');
  const scratch = join(root, 'scratch');
  mkdirSync(shm);
  mkdirSync(scratch);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256m,mode=1777', 'tmpfs', shm]);
  try {
    const dead = join(ownMemoryRoot(shm), '.memory-4194303_1-0123456789ab');
    mkdirSync(dead, { recursive: true });
    writeFileSync(join(dead, 'memory'), 'a dead job\'s RAM');
    const p = { scratch, memoryDir: ownMemoryDir(shm) };
    assert.equal(await makeOwnMemory(p, 16), join(p.memoryDir, 'memory'));
    assert.equal(existsSync(dead), false, 'reaped');
    await removeOwnMemory(p);

    // Another user was first to make this user's dir in the shared tmpfs.
    rmSync(join(shm, `vmwu-${process.getuid!()}`), { recursive: true });
    mkdirSync(join(shm, `vmwu-${process.getuid!()}`));
    chownSync(join(shm, `vmwu-${process.getuid!()}`), 65534, 65534);
    const q = { scratch, memoryDir: ownMemoryDir(shm) };
    assert.equal(await makeOwnMemory(q, 16), join(scratch, 'memory'), 'the scratch dir serves');
  } finally {
    execFileSync('umount', [shm]);
    rmSync(root, { recursive: true, force: true });
  }
});
