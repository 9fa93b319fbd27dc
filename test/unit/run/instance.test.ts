import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { instancePaths, makeInstanceDirs, remakeInstanceDirs, runLogPaths } from '../../../src/run/instance.js';

test('a cold boot after a failed restore starts in scratch and socket dirs made anew: nothing QEMU\'s user left there is written through', async () => {
  const root = mkdtempSync(join(tmpdir(), 'vmwu-instance-'));
  try {
    // A scratch dir deep enough that the sockets go apart, as on a deep node dir.
    const scratch = join(root, 'd'.repeat(100), 'instances', 'job-1');
    const p = instancePaths(scratch, runLogPaths(join(root, 'run')), `remake-${process.pid}`);
    assert.notEqual(p.sockDir, p.scratch);
    makeInstanceDirs(p);
    const victim = join(root, 'victim');
    writeFileSync(victim, 'not the guest\'s');
    // What the restore's QEMU (its user owns both dirs) may leave behind.
    symlinkSync(victim, p.overlay);
    symlinkSync(victim, join(p.sockDir, 'qmp.sock'));
    mkdirSync(join(p.scratch, 'stray'));
    await remakeInstanceDirs(p);
    for (const dir of [p.scratch, p.sockDir]) {
      assert.deepEqual(readdirSync(dir), [], `${dir} is empty`);
      assert.ok(lstatSync(dir).isDirectory());
      assert.equal(statSync(dir).mode & 0o777, 0o700);
      assert.equal(statSync(dir).uid, process.getuid!());
    }
    assert.equal(existsSync(p.overlay), false);
    assert.equal(readFileSync(victim, 'utf8'), 'not the guest\'s');
    rmSync(p.sockDir, { recursive: true, force: true });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
