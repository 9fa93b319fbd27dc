import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { root } from '../support/harness.js';

/**
 * Rootless by design: an unprivileged user builds the tiny base and runs a job,
 * with its own store. As root the test drops to `nobody` with setpriv; as any
 * other user it already is unprivileged.
 */
test('an unprivileged user builds a base and runs a unit', { timeout: 180_000 }, (t) => {
  const home = mkdtempSync(join(tmpdir(), 'vmwu-rootless-'));
  const asRoot = process.getuid?.() === 0;
  const drop = asRoot ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--'] : [];
  if (asRoot) {
    chownSync(home, 65534, 65534);
    const canRead = spawnSync(drop[0]!, [...drop.slice(1), 'test', '-r', join(root, 'bin', 'vmwu.js')]);
    if (canRead.status !== 0) {
      t.skip(`SKIPPED LOUDLY: user nobody cannot read ${root} (clone it under a world-readable path to run this test)`);
      return;
    }
  }
  const env = { PATH: process.env.PATH, HOME: home, VMWU_HOME: join(home, 'store') };
  const vmwu = (...args: string[]) => spawnSync(drop.length ? drop[0]! : process.execPath,
    [...drop.slice(1), ...(drop.length ? [process.execPath] : []), join(root, 'bin', 'vmwu.js'), ...args], { env, encoding: 'utf8', cwd: home });
  const b = vmwu('base', 'build', 'tiny');
  assert.equal(b.status, 0, b.stderr);
  const r = vmwu('run', '--base', 'tiny', '--json', '--', 'sh', '-c', 'id -u');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { status: string; outDir: string };
  assert.equal(j.status, 'succeeded');
  const who = spawnSync('stat', ['-c', '%u', j.outDir], { encoding: 'utf8' });
  if (asRoot) assert.equal(who.stdout.trim(), '65534', 'the outputs belong to the unprivileged user');
});
