import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { busyboxBinary, imageSweepPlan, MUSL_LIBC, muslHello, populateBusybox, staticHello, umociImage, userImageBase } from '../support/oci-images.js';
import { testHome, tmp, vmwu } from '../support/harness.js';

/**
 * Container images made here with umoci become bases (vmwu base pull), and their
 * jobs print what the same command prints in the unpacked root under chroot.
 */

const root = process.getuid?.() === 0;
const dir = tmp('vmwu-images-');
const refs: Record<string, string> = {};
const bundles: Record<string, string> = {};

/** The command in the image's unpacked root, by chroot, as the image's user, with its env. */
function chroot(rootfs: string, o: { user?: string; groups?: string; env?: string[] }, script: string): string {
  return execFileSync('env', ['-i', 'PATH=/bin', ...(o.env ?? []), '/usr/sbin/chroot', ...(o.user ? [`--userspec=${o.user}`] : []), ...(o.groups ? [`--groups=${o.groups}`] : []), rootfs, '/bin/sh', '-c', script]).toString();
}

async function stdoutOf(args: string[]): Promise<string> {
  const r = await vmwu(args);
  assert.equal(r.code, 0, `vmwu ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

describe('bases from container images', { concurrency: 2, timeout: 600_000 }, () => {
  before(() => {
    const bb = busyboxBinary(testHome(), dir);
    // 1. Two layers: the second deletes a file, replaces a directory with a file, and empties another (whiteouts).
    const a = umociImage(join(dir, 'layered'), 'v1', join(dir, 'b-layered'));
    populateBusybox(a.rootfs, bb);
    mkdirSync(join(a.rootfs, 'd'));
    writeFileSync(join(a.rootfs, 'd', 'x'), 'x\n');
    writeFileSync(join(a.rootfs, 'etc', 'gone'), 'gone\n');
    mkdirSync(join(a.rootfs, 'opq', 'sub'), { recursive: true });
    writeFileSync(join(a.rootfs, 'opq', 'sub', 'old'), 'old\n');
    a.commit('v1');
    rmSync(join(a.rootfs, 'etc', 'gone'));
    rmSync(join(a.rootfs, 'd'), { recursive: true });
    writeFileSync(join(a.rootfs, 'd'), 'now a file\n');
    rmSync(join(a.rootfs, 'opq', 'sub'), { recursive: true });
    writeFileSync(join(a.rootfs, 'opq', 'new'), 'new\n');
    refs.layered = a.commit('v2');
    bundles.layered = a.rootfs;
    // 2. Distroless: nothing but one static binary, with an entrypoint, a cmd, a user and an env.
    const h = umociImage(join(dir, 'distroless'), 'v1', join(dir, 'b-distroless'));
    copyFileSync(staticHello(dir), join(h.rootfs, 'hello'));
    h.commit('v1');
    refs.distroless = h.config(['--config.entrypoint', '/hello', '--config.cmd', 'world', '--config.env', 'GREETING=hi', '--config.user', '1000:1000']);
    bundles.distroless = h.rootfs;
    // 3. A non-root USER by name, a WORKDIR and an ENV.
    const u = umociImage(join(dir, 'user'), 'v1', join(dir, 'b-user'));
    populateBusybox(u.rootfs, bb, 'root:x:0:0:root:/root:/bin/sh\nsci:x:1000:1000::/home/sci:/bin/sh\n', 'root:x:0:\nsci:x:1000:\nlab:x:2000:sci\n');
    mkdirSync(join(u.rootfs, 'data'));
    u.commit('v1');
    refs.user = u.config(['--config.user', 'sci', '--config.workingdir', '/data', '--config.env', 'GREETING=hello']);
    bundles.user = u.rootfs;
    // 4. Alpine-style: busybox, musl's loader at /lib/ld-musl-x86_64.so.1 and a program linked against it.
    const m = umociImage(join(dir, 'musl'), 'v1', join(dir, 'b-musl'));
    populateBusybox(m.rootfs, bb);
    for (const d of ['lib', 'usr/bin']) mkdirSync(join(m.rootfs, d), { recursive: true });
    copyFileSync(MUSL_LIBC, join(m.rootfs, 'lib', 'ld-musl-x86_64.so.1'));
    copyFileSync(muslHello(dir), join(m.rootfs, 'usr', 'bin', 'hello'));
    writeFileSync(join(m.rootfs, 'etc', 'alpine-release'), '3.20.0\n');
    m.commit('v1');
    refs.musl = m.config(['--config.cmd', '/usr/bin/hello', '--config.cmd', 'from', '--config.cmd', 'musl', '--config.env', 'PATH=/usr/bin:/bin']);
    bundles.musl = m.rootfs;
    // Its own image for the unit test, which runs beside the others: one more layer on the same base layer.
    writeFileSync(join(m.rootfs, 'etc', 'motd'), 'for units\n');
    m.commit('v2');
    m.config(['--config.cmd', '/usr/bin/hello', '--config.cmd', 'from', '--config.cmd', 'musl', '--config.env', 'PATH=/usr/bin:/bin']);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a later layer\'s whiteouts delete, replace and empty what the layer below held', async () => {
    const pulled = JSON.parse(await stdoutOf(['base', 'pull', refs.layered!, '--name', 'it-layered', '--json'])) as { converted: number; layerCount: number };
    assert.equal(pulled.layerCount, 2);
    const script = 'ls /etc; cat /d; ls /opq; ls /bin | sort | tr "\\n" " "';
    const got = await stdoutOf(['run', '--base', 'it-layered', '--', 'sh', '-c', script]);
    if (root) assert.equal(got, chroot(bundles.layered!, {}, script));
    assert.doesNotMatch(got, /gone|old|sub/);
    assert.match(got, /now a file/);
    // The same image again: nothing is converted anew; under another name it is refused, naming the base it is.
    const again = JSON.parse(await stdoutOf(['base', 'pull', refs.layered!, '--name', 'it-layered', '--json'])) as { converted: number };
    assert.equal(again.converted, 0);
    const other = await vmwu(['base', 'pull', refs.layered!, '--name', 'it-layered-2']);
    assert.equal(other.code, 125);
    assert.match(other.stderr, /already in the store as base it-layered/);
  });

  test('a distroless image runs its entrypoint as its user, args replace its cmd, and it has no shell to open', async () => {
    await stdoutOf(['base', 'pull', refs.distroless!, '--name', 'it-distroless']);
    assert.equal(await stdoutOf(['run', '--base', 'it-distroless']), 'hello world uid=1000 greeting=hi\n');
    assert.equal(await stdoutOf(['run', '--base', 'it-distroless', '--', 'there', 'again']), 'hello there again uid=1000 greeting=hi\n');
    assert.equal(await stdoutOf(['run', '--base', 'it-distroless', '--entrypoint', '/hello']), 'hello uid=1000 greeting=hi\n');
    if (root) assert.equal(await stdoutOf(['run', '--base', 'it-distroless']), execFileSync('env', ['-i', 'GREETING=hi', '/usr/sbin/chroot', '--userspec=1000:1000', bundles.distroless!, '/hello', 'world']).toString());
    const sh = await vmwu(['shell', '--base', 'it-distroless']);
    assert.equal(sh.code, 125);
    assert.match(sh.stderr, /has no shell/);
  });

  test('USER by name, WORKDIR and ENV are honoured, and the user can write its outputs', async () => {
    await stdoutOf(['base', 'pull', refs.user!, '--name', 'it-user']);
    const script = 'id -u; id -G; pwd; echo "$GREETING $HOME"';
    const got = await stdoutOf(['run', '--base', 'it-user', '--', 'sh', '-c', `${script}; touch /job/work/result`]);
    assert.equal(got, '1000\n1000 2000\n/data\nhello /home/sci\n');
    if (root) assert.equal(got, chroot(bundles.user!, { user: '1000:1000', groups: '1000,2000', env: ['GREETING=hello', 'HOME=/home/sci'] }, `cd /data && ${script}`));
  });

  test('an Alpine-style musl image: its dynamically linked program runs on the image\'s own loader', async () => {
    assert.match(execFileSync('readelf', ['-l', join(bundles.musl!, 'usr', 'bin', 'hello')]).toString(), /interpreter: \/lib\/ld-musl-x86_64\.so\.1/);
    await stdoutOf(['base', 'pull', refs.musl!, '--name', 'it-musl']);
    const got = await stdoutOf(['run', '--base', 'it-musl']);
    assert.equal(got, 'hello from musl uid=0 greeting=-\n');
    if (root) assert.equal(got, chroot(bundles.musl!, {}, '/usr/bin/hello from musl'));
  });

  test('a unit\'s base: names an image (relative to the spec): pulled on build, files and setup on top, its cmd runs where the unit has no run:', async () => {
    const unit = join(dir, 'on-image');
    mkdirSync(unit);
    writeFileSync(join(unit, 'greeting.txt'), 'from the unit\n');
    writeFileSync(join(unit, 'vmwu.yaml'), ['name: it-on-image', 'version: 1.0.0', 'base: oci:../musl:v2', 'files: [{from: ./greeting.txt, to: /srv/}]',
      'setup: "id -u > /srv/setup-uid"', ''].join('\n'));
    await stdoutOf(['build', unit, '-q', '--json']);
    const shown = JSON.parse(await stdoutOf(['unit', 'show', 'it-on-image', '--json'])) as { base: string };
    assert.match(shown.base, /^musl:v2(-[0-9a-f]{12})?$/, 'the image was pulled as a base, named after its layout and tag (and its digest, when the name was taken)');
    const again = JSON.parse(await stdoutOf(['build', unit, '-q', '--json'])) as { cached: boolean };
    assert.equal(again.cached, true, 'the second build finds the pulled base and its layer');
    assert.equal(await stdoutOf(['run', 'it-on-image']), 'hello from musl uid=0 greeting=-\n');
    assert.equal(await stdoutOf(['run', 'it-on-image', '--', 'cat', '/srv/greeting.txt', '/srv/setup-uid']), 'from the unit\n0\n');
  });

  test('a sweep on an image base runs each job in its work dir, as the image\'s user, with its env', async () => {
    const sub = join(dir, 'sweep');
    mkdirSync(sub);
    userImageBase(testHome(), sub, 'it-sweep-user');
    const name = `imgsweep-${Date.now().toString(36)}`;
    await stdoutOf(['sweep', imageSweepPlan(sub), '--base', 'it-sweep-user', '--name', name, '--retries', '0']);
    const rs = JSON.parse(await stdoutOf(['results', name, '--json'])) as { status: string; outputs: string[] }[];
    assert.deepEqual(rs.map((j) => j.status), ['succeeded', 'succeeded']);
    assert.deepEqual(rs.map((j) => readFileSync(j.outputs[0]!, 'utf8')).sort(), ['1 1000 hello\n', '2 1000 hello\n']);
  });
});
