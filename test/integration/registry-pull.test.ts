import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { busyboxBinary, populateBusybox, umociImage } from '../support/oci-images.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { testHome, tmp, vmwu } from '../support/harness.js';

/**
 * `vmwu base pull` from a real registry (docker-registry with TLS from a test CA and
 * htpasswd auth) and from every other transport skopeo spells, and what it says,
 * leaving the store as it was, when the registry refuses or lies.
 */

const dir = tmp('vmwu-registry-pull-');
let reg: TestRegistry;
let layout: string;
const creds = () => ['--creds', `${reg.user}:${reg.password}`, '--cert-dir', reg.certDir];
const skopeoDest = () => ['--dest-creds', `${reg.user}:${reg.password}`, '--dest-cert-dir', reg.certDir];

async function ok(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await vmwu(args, env);
  assert.equal(r.code, 0, `vmwu ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function refused(args: string[], says: RegExp): Promise<string> {
  const r = await vmwu(args);
  assert.notEqual(r.code, 0, `vmwu ${args.join(' ')} succeeded`);
  assert.match(r.stderr, says);
  return r.stderr;
}

/** What a failed pull must leave as it was: the bases and the image layer rows. */
async function storeState(): Promise<string> {
  const bases = JSON.parse(await ok(['base', 'list', '--json'])) as { name: string; digest: string }[];
  const rows = execFileSync('sqlite3', [join(testHome(), 'vmwu.db'), 'SELECT key FROM image_layers ORDER BY key']).toString();
  return JSON.stringify(bases.map((b) => `${b.name}=${b.digest}`).sort()) + rows;
}

describe('base pull from a registry', { concurrency: 1, timeout: 600_000 }, () => {
  before(async () => {
    reg = await startRegistry(join(dir, 'registry'));
    const bb = busyboxBinary(testHome(), dir);
    layout = join(dir, 'layout');
    const img = umociImage(layout, 'v1', join(dir, 'bundle'));
    populateBusybox(img.rootfs, bb);
    img.commit('v1');
    writeFileSync(join(img.rootfs, 'etc', 'hello'), 'hello from the registry\n');
    img.commit('v2');
    img.config(['--config.cmd', 'cat', '--config.cmd', '/etc/hello']);
    execFileSync('skopeo', ['copy', '-q', ...skopeoDest(), `oci:${layout}:v2`, `docker://${reg.host}/lab/hello:v2`]);
    execFileSync('skopeo', ['copy', '-q', `oci:${layout}:v2`, `oci-archive:${join(dir, 'hello.oci.tar')}`]);
    execFileSync('skopeo', ['copy', '-q', `oci:${layout}:v2`, `docker-archive:${join(dir, 'hello.docker.tar')}:lab/hello:v2`]);
  });
  after(async () => {
    await reg?.stop();
  });

  test('docker:// over TLS with credentials: the image runs with its own cmd', async () => {
    const out = JSON.parse(await ok(['base', 'pull', `docker://${reg.host}/lab/hello:v2`, '--name', 'reg-hello', ...creds(), '--json'])) as { converted: number; layerCount: number; name: string };
    assert.equal(out.name, 'reg-hello');
    assert.equal(out.layerCount, 2);
    assert.equal(await ok(['run', '--base', 'reg-hello']), 'hello from the registry\n');
  });

  test('oci:, oci-archive: and docker-archive: give the same layers, converted once', async () => {
    // The same OCI manifest is the same base: pulled again under its name, nothing is converted.
    const oci = JSON.parse(await ok(['base', 'pull', `oci:${layout}:v2`, '--name', 'reg-hello', '--json'])) as { converted: number };
    assert.equal(oci.converted, 0);
    const archive = JSON.parse(await ok(['base', 'pull', `oci-archive:${join(dir, 'hello.oci.tar')}`, '--name', 'reg-hello', '--json'])) as { converted: number };
    assert.equal(archive.converted, 0);
    // docker save's format has another manifest (another base), and the same layers.
    const docker = JSON.parse(await ok(['base', 'pull', `docker-archive:${join(dir, 'hello.docker.tar')}`, '--name', 'reg-hello-docker', '--json'])) as { converted: number; layerCount: number };
    assert.equal(docker.converted, 0);
    assert.equal(docker.layerCount, 2);
    assert.equal(await ok(['run', '--base', 'reg-hello-docker', '--', 'cat', '/etc/hello']), 'hello from the registry\n');
    // A second name for the same image is refused, naming the first.
    await refused(['base', 'pull', `oci:${layout}:v2`, '--name', 'reg-again'], /already in the store as base reg-hello/);
  });

  test('docker load from standard input and from -i: found by the archive\'s name, run with its own cmd; what is no docker-archive is named', async () => {
    const archive = join(dir, 'hello.docker.tar');
    const loaded = await vmwu(['docker', 'load'], {}, readFileSync(archive));
    assert.equal(loaded.code, 0, loaded.stderr);
    assert.match(loaded.stdout, /^Loaded image: (docker\.io\/)?lab\/hello:v2\n$/);
    const images = await ok(['docker', 'images']);
    assert.match(images, /^lab\/hello\s+v2\s/m);
    const run = await vmwu(['docker', 'run', '--rm', 'lab/hello:v2']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'hello from the registry\n');
    const again = await vmwu(['docker', 'load', '-q', '-i', archive]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, loaded.stdout, 'the same image loads as the same base');
    const before = await storeState();
    const notTar = await vmwu(['docker', 'load'], {}, Buffer.from('not an archive at all\n'.repeat(100)));
    assert.equal(notTar.code, 1);
    assert.match(notTar.stderr, /docker load: the (input is not a tar archive|archive has no manifest\.json)/);
    const oci = await vmwu(['docker', 'load', '-i', join(dir, 'hello.oci.tar')]);
    assert.equal(oci.code, 1);
    assert.match(oci.stderr, /no manifest\.json, so it is not a docker-archive[\s\S]*oci-archive/);
    assert.equal(await storeState(), before, 'nothing registered by a refused load');
  });

  test('refused credentials, a missing tag and an untrusted certificate are named; nothing is registered', async () => {
    const before = await storeState();
    await refused(['base', 'pull', `docker://${reg.host}/lab/hello:v2`, '--name', 'x1', '--creds', `${reg.user}:wrong`, '--cert-dir', reg.certDir], /the registry refused the credentials for docker:\/\/localhost:\d+\/lab\/hello:v2/);
    await refused(['base', 'pull', `docker://${reg.host}/lab/hello:nope`, '--name', 'x2', ...creds()], /no image docker:\/\/localhost:\d+\/lab\/hello:nope/);
    await refused(['base', 'pull', `docker://${reg.host}/lab/hello:v2`, '--name', 'x3', '--creds', `${reg.user}:${reg.password}`], /TLS certificate .* is not trusted\n.*--cert-dir/);
    assert.equal(await storeState(), before);
  });

  test('a blob whose content does not match its digest is refused; nothing is registered', async () => {
    // An image of its own, so that no earlier pull has its layer cached.
    const img = umociImage(join(dir, 'tampered'), 'v1', join(dir, 'bundle-t'));
    writeFileSync(join(img.rootfs, 'data'), 'the real content\n'.repeat(1000));
    img.commit('v1');
    execFileSync('skopeo', ['copy', '-q', ...skopeoDest(), `oci:${join(dir, 'tampered')}:v1`, `docker://${reg.host}/lab/tampered:v1`]);
    const index = JSON.parse(readFileSync(join(dir, 'tampered', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(readFileSync(join(dir, 'tampered', 'blobs', 'sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { layers: { digest: string }[] };
    const hex = manifest.layers[0]!.digest.slice(7);
    const data = join(reg.storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    // The same size, other bytes: only the digest can tell.
    const real = readFileSync(data);
    writeFileSync(data, Buffer.alloc(real.length, 0x5a));
    const before = await storeState();
    await refused(['base', 'pull', `docker://${reg.host}/lab/tampered:v1`, '--name', 'tampered', ...creds()], /a blob of .*lab\/tampered:v1 does not match its digest/);
    assert.equal(await storeState(), before);
    assert.deepEqual(readdirSync(join(testHome(), 'tmp')).filter((f) => f.startsWith('base-')), [], 'no work directory is left behind');
  });

  test('vmwu login stores credentials where skopeo and a later pull find them', async () => {
    const authFile = join(dir, 'auth.json');
    const env = { REGISTRY_AUTH_FILE: authFile };
    const login = (password: string) => vmwu(['login', reg.host, '--username', reg.user, '--password-stdin', '--cert-dir', reg.certDir], env, `${password}\n`);
    const bad = await login('wrong');
    assert.notEqual(bad.code, 0, 'a login with a wrong password succeeded');
    assert.match(bad.stderr, new RegExp(`the registry refused the credentials for ${reg.host}\n`));
    assert.throws(() => readFileSync(authFile), 'a refused login wrote the auth file');
    const r = await login(reg.password);
    assert.equal(r.code, 0, r.stderr);
    const saved = JSON.parse(readFileSync(authFile, 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(saved.auths[reg.host]!.auth, 'base64').toString(), `${reg.user}:${reg.password}`);
    // skopeo itself reads what vmwu wrote.
    execFileSync('skopeo', ['inspect', '--raw', '--authfile', authFile, '--cert-dir', reg.certDir, `docker://${reg.host}/lab/hello:v2`]);
    const out = JSON.parse(await ok(['base', 'pull', `docker://${reg.host}/lab/hello:v2`, '--name', 'reg-hello', '--cert-dir', reg.certDir, '--json'], env)) as { converted: number };
    assert.equal(out.converted, 0);
  });
});
