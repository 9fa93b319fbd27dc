import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { root, tmp } from '../support/harness.js';

/**
 * Rootless by design: an unprivileged user builds bases and runs jobs, with its
 * own store. As root the tests drop to an unprivileged user with setpriv; as any
 * other user they already are unprivileged.
 */
const asRoot = process.getuid?.() === 0;

/** vmwu as `user` (or as this process when not root), with a home and store of its own. */
function asUser(user: { name: string; uid: number; gid: number } | undefined, home: string) {
  const drop = user ? ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--'] : [];
  const env = { PATH: process.env.PATH, HOME: home, VMWU_HOME: join(home, 'store') };
  return (...args: string[]) => spawnSync(drop.length ? drop[0]! : process.execPath,
    [...drop.slice(1), ...(drop.length ? [process.execPath] : []), join(root, 'bin', 'vmwu.js'), ...args], { env, encoding: 'utf8', cwd: home });
}

/** Whether `uid` can read this checkout (it runs vmwu from it). */
function canRead(uid: number, gid: number): boolean {
  return spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', 'test', '-r', join(root, 'bin', 'vmwu.js')]).status === 0;
}

/** Builds a base of `kind` and runs `cmd` on it (named `base`) as that user; the run's out dir. */
function buildAndRun(vmwu: ReturnType<typeof asUser>, kind: string, base: string, cmd: string): string {
  const b = vmwu('base', 'build', kind);
  assert.equal(b.status, 0, b.stderr);
  const r = vmwu('run', '--base', base, '--json', '--', 'sh', '-c', cmd);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { status: string; outDir: string };
  assert.equal(j.status, 'succeeded');
  return j.outDir;
}

test('an unprivileged user builds a base and runs a unit', { timeout: 180_000 }, (t) => {
  const home = tmp('vmwu-rootless-');
  const nobody = asRoot ? { name: 'nobody', uid: 65534, gid: 65534 } : undefined;
  if (nobody) {
    chownSync(home, nobody.uid, nobody.gid);
    if (!canRead(nobody.uid, nobody.gid)) {
      t.skip(`SKIPPED LOUDLY: user nobody cannot read ${root} (clone it under a world-readable path to run this test)`);
      return;
    }
  }
  const vmwu = asUser(nobody, home);
  const outDir = buildAndRun(vmwu, 'tiny', 'tiny', 'id -u');
  const who = spawnSync('stat', ['-c', '%u', outDir], { encoding: 'utf8' });
  if (asRoot) assert.equal(who.stdout.trim(), '65534', 'the outputs belong to the unprivileged user');
  // A Debian base needs sub-ids, which nobody has: said at once, with the way out.
  const d = vmwu('base', 'build', 'debian');
  if (asRoot) {
    assert.notEqual(d.status, 0);
    assert.match(d.stderr, /\/etc\/subuid has no range for nobody/);
    assert.match(d.stderr, /usermod --add-subuids/);
  }
});

/**
 * A whole rootless Debian build as a new user would make it: a user with its
 * sub-ids (as useradd gives them), uidmap and genext2fs installed by the set-up.
 */
describe('a new unprivileged user builds a Debian base and runs a job on it', { skip: asRoot ? false : 'needs root to add a user', timeout: 600_000 }, () => {
  const name = `vmwu-rl-${process.pid}`;
  const home = tmp('vmwu-rootless-debian-');
  let uid: number | undefined;
  after(() => {
    spawnSync('userdel', [name]);
    // Its node dir (instances, cache) under the tmp dir, as vmwu names it (src/run/node-dirs.ts).
    if (uid !== undefined) rmSync(join(tmpdir(), `vmwu-${uid}`), { recursive: true, force: true });
  });

  test('mmdebstrap in unshare mode, then a job in the base it made', (t) => {
    const add = spawnSync('useradd', ['--no-create-home', '--home-dir', home, '--shell', '/usr/sbin/nologin', name], { encoding: 'utf8' });
    assert.equal(add.status, 0, add.stderr);
    const ids = spawnSync('id', ['-u', name], { encoding: 'utf8' });
    const gids = spawnSync('id', ['-g', name], { encoding: 'utf8' });
    const user = { name, uid: Number(ids.stdout.trim()), gid: Number(gids.stdout.trim()) };
    uid = user.uid;
    chownSync(home, user.uid, user.gid);
    if (!canRead(user.uid, user.gid)) {
      t.skip(`SKIPPED LOUDLY: a new user cannot read ${root} (clone it under a world-readable path to run this test)`);
      return;
    }
    const outDir = buildAndRun(asUser(user, home), 'debian', 'debian:bookworm', 'cat /etc/debian_version; id -u');
    const who = spawnSync('stat', ['-c', '%u', join(outDir, 'stdout')], { encoding: 'utf8' });
    assert.equal(who.stdout.trim(), String(user.uid), 'the outputs belong to the user');
  });
});
