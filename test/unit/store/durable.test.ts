import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { VmwuError } from '../../../src/errors.js';
import { noSpaceError } from '../../../src/store/no-space.js';

/**
 * Power-loss durability is about the order of system calls: a file's data must be
 * fsynced before its rename makes it visible under its final name, and the
 * directory fsynced after, before anything names it. A kill -9 cannot show that
 * (the page cache survives it), so each store operation runs here under strace
 * and the test reads the order of openat/fsync/rename/unlink/pwrite64 off the
 * trace. The operations are the real ones (test/unit/store/durable-scenario.ts).
 */

const scenario = join(dirname(fileURLToPath(import.meta.url)), 'durable-scenario.js');
const haveStrace = spawnSync('strace', ['-V']).status === 0;

interface Call { name: string; args: string; ret: string; start: number; end: number; path: string; to?: string }

/** Calls from an `strace -f` log, joining unfinished and resumed halves, each with the path its fd was opened at. */
function parseTrace(text: string): Call[] {
  const pending = new Map<string, { name: string; args: string; start: number }>();
  const raw: Omit<Call, 'path'>[] = [];
  text.split('\n').forEach((line, i) => {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) return;
    const [, pid, rest] = m as unknown as [string, string, string];
    const u = /^(\w+)\((.*) <unfinished \.\.\.>$/.exec(rest);
    if (u) {
      pending.set(pid, { name: u[1]!, args: u[2]!, start: i });
      return;
    }
    const r = /^<\.\.\. (\w+) resumed>(.*)\)\s+= (.*)$/.exec(rest);
    if (r) {
      const p = pending.get(pid);
      pending.delete(pid);
      raw.push({ name: r[1]!, args: (p?.args ?? '') + r[2]!, ret: r[3]!, start: p?.start ?? i, end: i });
      return;
    }
    const c = /^(\w+)\((.*)\)\s+= (.*)$/.exec(rest);
    if (c) raw.push({ name: c[1]!, args: c[2]!, ret: c[3]!, start: i, end: i });
  });
  // Replay opens (at their end) and closes (at their start) in trace order to name each fd.
  const actions: { at: number; run: () => void }[] = [];
  const fds = new Map<string, string>();
  const calls: Call[] = [];
  const str = (args: string, n: number) => [...args.matchAll(/"((?:[^"\\]|\\.)*)"/g)][n]?.[1] ?? '';
  for (const c of raw) {
    if (c.name === 'openat') {
      actions.push({ at: c.end, run: () => { if (/^\d+$/.test(c.ret)) fds.set(c.ret, str(c.args, 0)); } });
    } else if (c.name === 'close') {
      actions.push({ at: c.start, run: () => fds.delete(c.args.trim()) });
    } else if (['fsync', 'fdatasync', 'pwrite64'].includes(c.name)) {
      actions.push({ at: c.start, run: () => calls.push({ ...c, path: fds.get(c.args.split(',')[0]!.trim()) ?? '?' }) });
    } else if (['rename', 'renameat', 'renameat2', 'link', 'linkat'].includes(c.name)) {
      calls.push({ ...c, name: c.name.startsWith('rename') ? 'rename' : 'link', path: str(c.args, 0), to: str(c.args, 1) });
    } else if (['unlink', 'unlinkat'].includes(c.name)) {
      calls.push({ ...c, name: 'unlink', path: str(c.args, 0) });
    }
  }
  actions.sort((a, b) => a.at - b.at).forEach((a) => a.run());
  return calls.sort((a, b) => a.start - b.start);
}

function traced(name: string): { dir: string; calls: Call[]; after: (c: Call) => boolean } {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-durable-'));
  const log = join(dir, 'trace');
  execFileSync('strace', ['-f', '-qq', '-s', '400', '-o', log, '-e', 'trace=openat,close,fsync,fdatasync,pwrite64,rename,renameat,renameat2,link,linkat,unlink,unlinkat',
    process.execPath, scenario], { env: { ...process.env, VMWU_DURABLE_SCENARIO: name, VMWU_DURABLE_DIR: dir }, stdio: ['ignore', 'ignore', 'pipe'] });
  const text = readFileSync(log, 'utf8');
  const markLine = text.split('\n').findIndex((l) => l.includes(`${dir}/MARK"`));
  assert.ok(markLine >= 0, 'the scenario marked where its operation starts');
  return { dir, calls: parseTrace(text), after: (c) => c.start > markLine };
}

const syncs = (calls: Call[]) => calls.filter((c) => (c.name === 'fsync' || c.name === 'fdatasync') && c.ret === '0');

/** `to` appeared by a rename whose source was fsynced before it, and its directory was fsynced after. */
function assertDurableRename(calls: Call[], to: (p: string) => boolean, what: string): Call {
  const r = calls.find((c) => c.name === 'rename' && to(c.to!) && c.ret === '0');
  assert.ok(r, `${what}: no rename into place in the trace`);
  assert.ok(syncs(calls).some((s) => s.path === r.path && s.end < r.start), `${what}: ${r.path} was renamed to ${r.to} without an fsync first`);
  assert.ok(syncs(calls).some((s) => s.path === dirname(r.to!) && s.start > r.end), `${what}: the directory ${dirname(r.to!)} was not fsynced after the rename`);
  return r;
}

describe('durability: fsync before rename, directory after (strace)', { skip: haveStrace ? false : 'strace is not installed (scripts/setup.sh installs it)', concurrency: 2 }, () => {
  test('writeFileDurableSync: a record is on the disk under its name', () => {
    const { dir, calls } = traced('write');
    assertDurableRename(calls, (p) => p === join(dir, 'record.json'), 'record');
    rmSync(dir, { recursive: true, force: true });
  });

  test('BlobStore.putFile: a copied blob and a moved layer are fsynced, renamed to their digest, the blob dir fsynced', () => {
    for (const name of ['put-copy', 'put-move']) {
      const { dir, calls, after } = traced(name);
      const r = assertDurableRename(calls.filter(after), (p) => /\/blobs\/[0-9a-f]{64}$/.test(p), name);
      assert.match(basename(r.path), /^\.tmp-\d+\.\d+-[0-9a-f]+$/, 'written under a temporary name that names its writer');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('collectOutputs: every extracted file and directory is fsynced before work/ gets its name', () => {
    const { dir, calls } = traced('collect');
    const r = assertDurableRename(calls, (p) => p === join(dir, 'out', 'work'), 'work dir');
    for (const f of ['sub/a.txt', 'b.txt', 'sub']) {
      assert.ok(syncs(calls).some((s) => s.path === join(r.path, f) && s.end < r.start), `${f} was fsynced before the rename`);
    }
  });

  test('stageOut: a copied result tree is fsynced before its rename, its directory after', () => {
    const { dir, calls } = traced('stage-out');
    const r = assertDurableRename(calls, (p) => p === join(dir, 'results', 'nested', 'tree-1'), 'stage-out');
    assert.ok(syncs(calls).some((s) => s.path === join(r.path, 'f.txt') && s.end < r.start), 'the file inside the copied tree was fsynced first');
  });

  test('importBundle: staged blobs are fsynced, moved, and the blob dir fsynced before the transaction that registers them commits', () => {
    const { dir, calls, after } = traced('import');
    const mine = calls.filter(after);
    const r = assertDurableRename(mine, (p) => p.startsWith(join(dir, 'store', 'blobs', 'sha256') + '/'), 'import');
    const dirSync = syncs(mine).find((s) => s.path === dirname(r.to!) && s.start > r.end)!;
    const commit = mine.find((c) => c.name === 'pwrite64' && c.path.endsWith('vmwu.db-wal') && c.start > r.end);
    assert.ok(commit, 'the registration was written to the WAL');
    assert.ok(dirSync.end < commit.start, 'the blob dir was fsynced before the rows naming the blob were written');
  });

  test('gc: the rows and marks are deleted and fsynced (synchronous=FULL) before any blob file is unlinked', () => {
    const { dir, calls, after } = traced('gc');
    const mine = calls.filter(after);
    const unlink = mine.find((c) => c.name === 'unlink' && /\/blobs\/sha256\/[0-9a-f]{64}$/.test(c.path));
    assert.ok(unlink, 'gc unlinked the unused layer blob');
    const walSync = syncs(mine).find((s) => s.path.endsWith('vmwu.db-wal') && s.end < unlink.start);
    assert.ok(walSync, 'the WAL was fsynced before the unlink: the deletion of the rows is on the disk first');
    assert.ok(mine.some((c) => c.name === 'pwrite64' && c.path.endsWith('vmwu.db-wal') && c.end < walSync.start), 'the deletion was written before that fsync');
    assert.ok(syncs(mine).some((s) => s.path === join(dir, 'store', 'blobs', 'sha256') && s.start > unlink.end), 'the blob dir was fsynced after the unlink');
  });

  test('ingest: staged-out results are on the disk before the batch commits, and the commit before its reports move', () => {
    const { dir, calls, after } = traced('ingest');
    const mine = calls.filter(after);
    const results = join(dir, 'store', 'experiments', 'ing', 'results');
    const resultSync = syncs(mine).find((s) => s.path === results);
    assert.ok(resultSync, 'the results dir was fsynced');
    const walSync = syncs(mine).find((s) => s.path.endsWith('vmwu.db-wal') && s.start > resultSync.end);
    assert.ok(walSync, 'the transaction was fsynced after the results were');
    const move = mine.find((c) => c.name === 'rename' && c.to!.endsWith('/jobs/1/attempt-1.done.json'));
    assert.ok(move, 'the report moved beside its attempt');
    assert.ok(walSync.end < move.start, 'the commit was on the disk before the report moved');
  });
});

describe('a full disk is NO_SPACE (src/store/no-space.ts)', () => {
  const where = { dir: tmpdir(), store: '/srv/vmwu' };
  const hint = 'free space there and try again (`vmwu gc` removes unused layers and blobs from the store /srv/vmwu); nothing half-made was registered';

  test('a write\'s ENOSPC or EDQUOT, and SQLite\'s FULL, name the directory, its free space and the store', () => {
    for (const code of ['ENOSPC', 'EDQUOT', 'SQLITE_FULL']) {
      const e = noSpaceError(Object.assign(new Error(`${code}: no space left on device, write`), { code }), where) as VmwuError;
      assert.equal(e.code, 'NO_SPACE');
      assert.match(e.message, new RegExp(`^no space left on the filesystem of ${tmpdir()} \\(.* free\\): ${code}: no space left on device, write$`));
      assert.equal(e.hint, hint);
    }
  });

  test('a tool that said so on stderr: its command and the line that says why', () => {
    const e = noSpaceError(new VmwuError('TOOL_FAILED', 'qemu-img convert -q -f… failed (exit 1):\nqemu-img: error while writing at byte 0: No space left on device'), where) as VmwuError;
    assert.equal(e.code, 'NO_SPACE');
    assert.match(e.message, /: qemu-img convert -q -f… failed \(exit 1\): qemu-img: error while writing at byte 0: No space left on device$/);
  });

  test('anything else is left as it was; a NO_SPACE that did not name the store gets it in its hint', () => {
    const other = new VmwuError('TOOL_FAILED', 'mke2fs … failed (exit 1):\nbad option');
    assert.equal(noSpaceError(other, where), other);
    const plain = new Error('EACCES');
    assert.equal(noSpaceError(plain, where), plain);
    const earlier = new VmwuError('NO_SPACE', 'the store ran out of disk space while staging x', 'free space');
    const e = noSpaceError(earlier, where) as VmwuError;
    assert.deepEqual([e.code, e.message, e.hint], ['NO_SPACE', earlier.message, hint]);
    assert.equal(noSpaceError(e, where), e);
  });
});
