import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { extract } from 'tar-stream';
import { DiskSerial, InputLayout } from '../../../guest/protocol.js';
import { mmdebstrapArgs } from '../../../src/base/debian.js';
import { writeInputDisk } from '../../../src/run/input-disk.js';
import { instanceDisks, jobDiskBytes } from '../../../src/run/prepare.js';
import { buildScript } from '../../../src/unit/build-script.js';

test('the package step keeps apt\'s own files out of the layer and skips debconf\'s preconfiguration', () => {
  const s = buildScript({ packages: ['jq', "it's"], files: [], setup: null });
  assert.match(s, /^set -eu$/m);
  assert.match(s, /archives="\$work\/\.\.\/apt-archives"/, 'the .debs go to the job disk, beside the work dir');
  assert.match(s, /-o Dir::Cache::pkgcache= /, 'no pkgcache.bin is written');
  assert.match(s, /-o "Dir::Cache::Archives=\$archives\/"/);
  assert.match(s, /#clear DPkg::Pre-Install-Pkgs;/);
  assert.doesNotMatch(s, /apt-get clean/, 'apt-get clean would remove the base\'s srcpkgcache.bin from the layer');
  assert.match(s, /^if \[ -z "\$installed" \] && ! apt_get install 'jq' 'it'\\''s'; then$/m, 'package names are quoted');
  assert.doesNotMatch(s, /Dir::State::Lists/, 'without lists of its own, apt takes the base\'s');
  assert.match(s, /^ {2}apt_get update$/m, 'old package lists are refreshed only when the install fails');
  assert.doesNotMatch(buildScript({ packages: [], files: [], setup: 'setup.sh' }), /apt/, 'an app step has nothing of apt');
});

test('given lists of its own, apt installs from them first, and from the whole lists (then fresh ones) when that fails', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-build-lists-'));
  try {
    const work = join(dir, 'job', 'work');
    mkdirSync(join(work, 'apt-lists'), { recursive: true });
    mkdirSync(join(dir, 'bin'));
    // A stand-in apt-get logs each call, and fails those whose argv matches $FAIL (the real one needs a Debian guest).
    writeFileSync(join(dir, 'bin', 'apt-get'), `#!/bin/sh\necho "$*" >> ${join(dir, 'calls')}\ncase "$*" in *$FAIL*) exit 100;; esac\n`, { mode: 0o755 });
    writeFileSync(join(work, 'build.sh'), buildScript({ packages: ['jq'], files: [], setup: null, lists: { dir: 'apt-lists', stanzas: 5 } }));
    const build = (fail: string) => {
      rmSync(join(dir, 'calls'), { force: true });
      const r = spawnSync('sh', ['build.sh'], { cwd: work, encoding: 'utf8', env: { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, FAIL: fail } });
      return { status: r.status, out: r.stdout, calls: readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n') };
    };
    const own = build('no-such-argv');
    assert.equal(own.status, 0);
    assert.equal(own.calls.length, 1, 'one install, from its own lists');
    assert.match(own.calls[0]!, new RegExp(`-o Dir::State::Lists=${work}/apt-lists -o Dir::Cache::srcpkgcache= install jq$`), 'and no srcpkgcache.bin of them is written over the base\'s');
    assert.match(own.out, /apt is given only the 5 package versions these may pull in/);
    const whole = build('Dir::State::Lists');
    assert.equal(whole.status, 0);
    assert.equal(whole.calls.length, 2);
    assert.doesNotMatch(whole.calls[1]!, /Dir::State::Lists/, 'then from the base\'s whole lists');
    assert.match(whole.out, /retrying from the whole lists/);
    const none = build('install jq');
    assert.notEqual(none.status, 0, 'a package no lists have fails the build');
    assert.deepEqual(none.calls.map((c) => / (install jq|update)$/.exec(c)?.[1]), ['install jq', 'install jq', 'update', 'install jq'], 'after fresh lists were tried');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('on an Alpine image the package step is apk add, with nothing of apt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-build-apk-'));
  try {
    // A stand-in apk on PATH records what it was asked (the real one needs Alpine's repositories).
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin', 'apk'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${join(dir, 'apk-args')}\n`, { mode: 0o755 });
    const script = buildScript({ packages: ['py3-numpy', "it's"], files: [], setup: null }, 'apk');
    assert.doesNotMatch(script, /apt/);
    writeFileSync(join(dir, 'build.sh'), script);
    const out = execFileSync('sh', ['build.sh'], { cwd: dir, encoding: 'utf8', env: { PATH: `${join(dir, 'bin')}:/usr/bin:/bin` } });
    assert.match(out, /vmwu-build: done/);
    assert.equal(readFileSync(join(dir, 'apk-args'), 'utf8'), "add\n--no-cache\npy3-numpy\nit's\n", 'the packages, quoted, to apk add --no-cache');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the app step copies files and directories into place and runs the setup from /', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-build-script-'));
  try {
    const work = join(dir, 'job', 'work');
    mkdirSync(join(work, 'file0', 'sub'), { recursive: true });
    writeFileSync(join(work, 'file0', 'sub', 'a.txt'), 'a\n');
    writeFileSync(join(work, 'file1'), 'b\n');
    writeFileSync(join(work, 'file2'), 'c\n');
    writeFileSync(join(work, 'setup.sh'), `cat ${join(dir, 'app', 'sub', 'a.txt')} > ${join(dir, 'setup-ran')}; pwd >> ${join(dir, 'setup-ran')}\n`);
    const script = buildScript({ packages: [], files: [
      { input: 'file0', to: join(dir, 'app'), name: 'src' }, { input: 'file1', to: join(dir, 'etc', 'x'), name: 'b.txt' }, { input: 'file2', to: `${join(dir, 'opt')}/`, name: 'c.txt' },
    ], setup: 'setup.sh' });
    writeFileSync(join(work, 'build.sh'), script);
    const out = execFileSync('sh', ['build.sh'], { cwd: work, encoding: 'utf8' });
    assert.match(out, /vmwu-build: done/);
    assert.equal(readFileSync(join(dir, 'app', 'sub', 'a.txt'), 'utf8'), 'a\n', 'a directory\'s contents land in its destination');
    assert.equal(readFileSync(join(dir, 'etc', 'x'), 'utf8'), 'b\n', 'a file becomes its destination');
    assert.equal(readFileSync(join(dir, 'opt', 'c.txt'), 'utf8'), 'c\n', 'a file goes into a destination ending in / under its own name');
    assert.equal(readFileSync(join(dir, 'setup-ran'), 'utf8'), 'a\n/\n', 'the setup ran after the copies, in /');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a build has a writable job disk of its own, after the disks every instance has', () => {
  const p = { scratch: '/s', overlay: '/s/root.qcow2', input: '/s/in.img', output: '/s/out.img', app: '/s/app.img', job: '/s/job.img' };
  const plain = instanceDisks(p, false);
  assert.deepEqual(plain.map((d) => d.id), ['root', 'in', 'out']);
  const build = instanceDisks(p, false, true);
  assert.deepEqual(build.slice(0, 3), plain, 'the other disks do not move');
  assert.deepEqual(build[3], { id: 'job', path: '/s/job.img', format: 'raw', serial: DiskSerial.job });
  assert.deepEqual(instanceDisks(p, true, true).map((d) => d.id), ['root', 'in', 'out', 'app', 'job']);
  const data = instanceDisks(p, false, true, 2);
  assert.deepEqual(data.map((d) => [d.id, d.serial, d.readOnly ?? false]), [['root', 'vmwu-root', false], ['in', 'vmwu-in', true], ['out', 'vmwu-out', false], ['job', 'vmwu-job', false],
    ['data0', 'vmwu-data0', true], ['data1', 'vmwu-data1', true]], 'datasets come last, read-only, numbered');
  assert.ok(jobDiskBytes(0) >= 512 * 1024 ** 2, 'room for the build script\'s downloads');
  assert.ok(jobDiskBytes(10 * 1024 ** 3) >= 20 * 1024 ** 3, 'the inputs fit, unpacked beside their archive');
});

test('the input disk carries the command to run after the cut only when there is one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-input-'));
  const names = async (image: string) => {
    const seen: string[] = [];
    const x = extract();
    x.on('entry', (h, s, next) => { seen.push(h.name); s.resume(); s.on('end', next); });
    await new Promise<void>((resolve, reject) => createReadStream(image).pipe(x).on('finish', () => resolve()).on('error', reject));
    return seen;
  };
  try {
    writeFileSync(join(dir, 'build.sh'), 'true\n');
    await writeInputDisk(join(dir, 'a.img'), { env: '', cmd: 'sh build-packages.sh\n', cmdAfterCut: 'sh build-app.sh\n' }, [join(dir, 'build.sh')]);
    assert.deepEqual(await names(join(dir, 'a.img')), [InputLayout.env, InputLayout.cmd, InputLayout.cmdAfterCut, `${InputLayout.inputs}/build.sh`]);
    await writeInputDisk(join(dir, 'b.img'), { env: '', cmd: 'true\n' }, []);
    assert.deepEqual(await names(join(dir, 'b.img')), [InputLayout.env, InputLayout.cmd]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the Debian base keeps apt\'s cache of its package lists, and only that', () => {
  const a = mmdebstrapArgs('bookworm', '/t', { rootless: false, cloneHelper: '/h' });
  assert.ok(a.includes('--skip=cleanup/apt/cache'), 'mmdebstrap\'s clean-up would remove it');
  const hooks = a.filter((x) => x.startsWith('--customize-hook='));
  const gen = hooks.findIndex((h) => /apt-cache -o Dir::Cache::pkgcache= gencaches/.test(h));
  const rm = hooks.findIndex((h) => /rm -f .*\/var\/cache\/apt\/\*\.bin/.test(h));
  assert.ok(rm >= 0 && gen > rm, 'stale caches and .debs go first, then the lists\' cache is made');
});
