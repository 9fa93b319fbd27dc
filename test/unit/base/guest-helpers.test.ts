import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { compileCloneHelper } from '../../../src/base/guest-helpers.js';

// The helper's work in a guest (clock, RNG, disks) is tested on real clones
// (test/integration/fast-start.test.ts); on the host only what changes nothing of it.
test('the clone helper says it waits only once the output tar waits on its FIFO, and refuses a bad request', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-clone-helper-'));
  const helper = await compileCloneHelper(dir);
  writeFileSync(join(dir, 'out'), '');
  writeFileSync(join(dir, 'in'), '');
  // Made before either starts, as the agent makes it: the helper holds it from its start.
  assert.equal(spawnSync('mkfifo', [join(dir, 'outputs')]).status, 0);
  const started = Date.now();
  const tar = spawn('sh', ['-c', 'sleep 0.3 && exec tar -cf outputs -C . work'], { cwd: dir, stdio: 'ignore' });
  let h: ReturnType<typeof spawn> | undefined;
  try {
    const archive = openSync('/dev/null', 'w');
    h = spawn(helper, ['serve', join(dir, 'out'), join(dir, 'in'), join(dir, 'outputs'), String(tar.pid)], { stdio: ['pipe', 'pipe', 'inherit', archive] });
    closeSync(archive);
    const lines = createInterface({ input: h.stdout! })[Symbol.asyncIterator]();
    assert.equal((await lines.next()).value, 'waiting');
    assert.ok(Date.now() - started >= 250, 'not before the tar opened its FIFO');
    h.stdin!.write('no go\n');
    assert.equal((await lines.next()).value, 'fail bad request');
    const code = await new Promise((r) => h!.on('close', r));
    assert.equal(code, 1);
  } finally {
    h?.kill();
    tar.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the clone helper names its usage when called without `serve`', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-clone-helper-'));
  try {
    const r = spawnSync(await compileCloneHelper(dir), ['wake'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /usage: vmwu-clone-helper serve OUT IN OUTPUTS TARPID/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
