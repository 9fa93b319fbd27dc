import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { listTree, tmp, vmwu, type CliResult } from '../support/harness.js';

/**
 * Units through a real registry (docker-registry, TLS, htpasswd): pushed from the
 * shared test store, pulled into fresh stores, where they run. Shared layers are
 * neither uploaded nor fetched twice (counted in the registry's own log), a tampered
 * blob is refused, and signatures are checked by vmwu and, independently, by OpenSSL.
 */

const work = tmp('vmwu-registry-push-');
let reg: TestRegistry;
const keys = join(work, 'keys');

interface PushJson { ref: string; digest: string; blobs: { total: number; uploaded: number; present: number }; signature?: string }
interface PullJson { unit: string; fetched: number; blobs: { total: number; added: number; present: number }; base: { imported: boolean }; signature?: string }

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stderr}`);
  return r;
}

const reach = () => ['--creds', `${reg.user}:${reg.password}`, '--cert-dir', reg.certDir];

async function push(unit: string, repoTag: string, extra: string[] = []): Promise<PushJson> {
  return JSON.parse(ok(await vmwu(['push', unit, `${reg.host}/${repoTag}`, ...reach(), '--json', ...extra]), `vmwu push ${unit}`).stdout) as PushJson;
}

async function pull(home: string, ref: string, extra: string[] = []): Promise<CliResult> {
  return vmwu(['pull', ref, ...reach(), '--json', ...extra], { VMWU_HOME: home });
}

/** A store's blobs, units and bases, and its tmp/: what a refused pull must leave as it was. */
async function snapshot(home: string) {
  const env = { VMWU_HOME: home };
  return {
    blobs: existsSync(join(home, 'blobs', 'sha256')) ? listTree(join(home, 'blobs', 'sha256')) : [],
    tmp: existsSync(join(home, 'tmp')) ? readdirSync(join(home, 'tmp')) : [],
    units: ok(await vmwu(['units', '--json'], env), 'vmwu units').stdout,
    bases: ok(await vmwu(['base', 'list', '--json'], env), 'vmwu base list').stdout,
  };
}

async function buildUnit(name: string, text: string): Promise<void> {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'msg.txt'), text);
  writeFileSync(join(dir, 'vmwu.yaml'), [`name: ${name}`, 'version: 1.0.0', 'base: tiny', 'files: [{from: ./msg.txt, to: /app/}]', 'run: "cat /app/msg.txt"', ''].join('\n'));
  ok(await vmwu(['build', dir, '-q', '--json']), `vmwu build ${name}`);
}

/** The registry's blob file for a digest (distribution's filesystem layout). */
const blobData = (digest: string) => join(reg.storage, 'docker', 'registry', 'v2', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data');

describe('vmwu push / pull through a registry', { concurrency: false, timeout: 600_000 }, () => {
  before(async () => {
    reg = await startRegistry(join(work, 'registry'));
    await buildUnit('pushone', 'one from the registry\n');
    await buildUnit('pushtwo', 'two from the registry\n');
    mkdirSync(keys);
    ok(await vmwu(['key', 'generate', '--out', join(keys, 'lab')]), 'vmwu key generate');
    ok(await vmwu(['key', 'generate', '--out', join(keys, 'other')]), 'vmwu key generate');
  });
  after(async () => {
    await reg?.stop();
  });

  test('key generate writes a private key only its owner reads, and refuses to overwrite it', async () => {
    assert.equal((readFileSync(join(keys, 'lab.pub'), 'utf8').match(/BEGIN PUBLIC KEY/) ?? []).length, 1);
    const mode = execFileSync('stat', ['-c', '%a', join(keys, 'lab.key')]).toString().trim();
    assert.equal(mode, '600');
    const again = await vmwu(['key', 'generate', '--out', join(keys, 'lab')]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already exists/);
  });

  test('push with the base, pull into an empty store, run there; the second unit moves only its own blobs', async () => {
    const first = await push('pushone:1.0.0', 'lab/units:one', ['--with-base', '--sign', join(keys, 'lab.key')]);
    // Its layer, the base's kernel, initrd and root, and the OVF: all new to the registry.
    assert.equal(first.blobs.total, 5);
    assert.equal(first.blobs.uploaded, 5);
    // Five blobs, the unit manifest (config), the signature's payload and config: eight uploads.
    assert.equal(reg.blobPuts('lab/units'), 8);
    const second = await push('pushtwo:1.0.0', 'lab/units:two', ['--with-base']);
    assert.equal(second.blobs.uploaded, 2, 'only its layer and its OVF are new');
    assert.equal(second.blobs.present, 3);
    assert.equal(reg.blobPuts('lab/units'), 8 + 3, 'the registry log shows the layer, the OVF and the config uploaded, the base not again');
    // A push again of the same unit is the same manifest, and uploads nothing.
    const again = await push('pushtwo:1.0.0', 'lab/units:two', ['--with-base']);
    assert.equal(again.digest, second.digest);
    assert.equal(reg.blobPuts('lab/units'), 11);

    const home = tmp('vmwu-pull-home-');
    const one = JSON.parse(ok(await pull(home, `${reg.host}/lab/units:one`, ['--verify', join(keys, 'lab.pub')]), 'vmwu pull one').stdout) as PullJson;
    assert.equal(one.unit, 'pushone:1.0.0');
    assert.equal(one.fetched, 4, 'the layer and the base\'s three blobs');
    assert.equal(one.base.imported, true);
    assert.match(one.signature ?? '', /sha256-[0-9a-f]{64}\.sig$/);
    const two = JSON.parse(ok(await pull(home, `docker://${reg.host}/lab/units@${second.digest}`), 'vmwu pull two').stdout) as PullJson;
    assert.equal(two.fetched, 1, 'only its layer: the base is in the store');
    assert.equal(two.blobs.present, 3);
    const run = ok(await vmwu(['run', 'pushtwo'], { VMWU_HOME: home }), 'vmwu run pushtwo');
    assert.equal(run.stdout, 'two from the registry\n');
    const runOne = ok(await vmwu(['run', 'pushone'], { VMWU_HOME: home }), 'vmwu run pushone');
    assert.equal(runOne.stdout, 'one from the registry\n');
  });

  test('vmwu-docker on another host\'s store: a pushed unit named as an image is pulled with its base and runs, and is listed by that name', async () => {
    const home = tmp('vmwu-docker-node-');
    const conf = join(work, 'registries.conf');
    // The site's registry, as a host has it set up: its credentials in the auth file, its CA trusted by registries.conf's insecure flag here.
    writeFileSync(conf, `[[registry]]\nlocation = "${reg.host}"\ninsecure = true\n`);
    const auth = join(work, 'auth.json');
    writeFileSync(auth, JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from(`${reg.user}:${reg.password}`).toString('base64') } } }));
    const env = { VMWU_HOME: home, CONTAINERS_REGISTRIES_CONF: conf, REGISTRY_AUTH_FILE: auth };
    const name = `${reg.host}/lab/units:one`;
    const missing = await vmwu(['docker', 'image', 'inspect', name], env);
    assert.equal(missing.code, 1);
    const r = ok(await vmwu(['docker', 'run', '--rm', name], env), 'vmwu docker run');
    assert.equal(r.stdout, 'one from the registry\n');
    const images = ok(await vmwu(['docker', 'images'], env), 'vmwu docker images');
    assert.match(images.stdout, new RegExp(`^${reg.host.replace('.', '\\.')}/lab/units\\s+one\\s`, 'm'));
    assert.match(images.stdout, /^vmwu\/pushone\s+1\.0\.0\s/m);
    ok(await vmwu(['docker', 'image', 'inspect', name], env), 'inspect by its registry name');
  });

  test('signatures: cosign\'s layout, verified by OpenSSL; a wrong key, an unsigned unit and a moved tag are refused', async () => {
    const signed = await push('pushone:1.0.0', 'lab/signed:v1', ['--sign', join(keys, 'lab.key')]);
    ok(await vmwu(['verify', `${reg.host}/lab/signed:v1`, '--key', join(keys, 'lab.pub'), ...reach()]), 'vmwu verify');
    // Read back as any OCI client would, then checked with OpenSSL alone.
    const sigTag = `docker://${reg.host}/lab/signed:sha256-${signed.digest.slice(7)}.sig`;
    const dir = join(work, 'sig');
    execFileSync('skopeo', ['copy', '-q', '--src-creds', `${reg.user}:${reg.password}`, '--src-cert-dir', reg.certDir, sigTag, `dir:${dir}`]);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { layers: { mediaType: string; digest: string; annotations: Record<string, string> }[] };
    const layer = manifest.layers[0]!;
    assert.equal(layer.mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
    const payloadFile = join(dir, layer.digest.slice(7));
    const payload = JSON.parse(readFileSync(payloadFile, 'utf8')) as { critical: { image: { 'docker-manifest-digest': string }; type: string; identity: { 'docker-reference': string } } };
    assert.equal(payload.critical.image['docker-manifest-digest'], signed.digest);
    assert.equal(payload.critical.type, 'cosign container image signature');
    assert.equal(payload.critical.identity['docker-reference'], `${reg.host}/lab/signed`);
    writeFileSync(join(work, 'sig.der'), Buffer.from(layer.annotations['dev.cosignproject.cosign/signature']!, 'base64'));
    assert.match(execFileSync('openssl', ['dgst', '-sha256', '-verify', join(keys, 'lab.pub'), '-signature', join(work, 'sig.der'), payloadFile]).toString(), /Verified OK/);

    const home = tmp('vmwu-pull-home-');
    const before = await snapshot(home);
    const wrongKey = await pull(home, `${reg.host}/lab/signed:v1`, ['--verify', join(keys, 'other.pub')]);
    assert.notEqual(wrongKey.code, 0);
    assert.match(wrongKey.stderr, /no signature that verifies with .*other\.pub: found a signature by another key/);
    const unsigned = await pull(home, `${reg.host}/lab/units:two`, ['--verify', join(keys, 'lab.pub')]);
    assert.notEqual(unsigned.code, 0);
    assert.match(unsigned.stderr, /is not signed/);
    // The tag now names another manifest, which nobody signed.
    await push('pushtwo:1.0.0', 'lab/signed:v1');
    const moved = await vmwu(['verify', `${reg.host}/lab/signed:v1`, '--key', join(keys, 'lab.pub'), ...reach()]);
    assert.notEqual(moved.code, 0);
    assert.match(moved.stderr, /is not signed/);
    assert.deepEqual(await snapshot(home), before, 'a refused pull leaves the store as it was');
  });

  test('a tampered blob is refused and the store is left as it was', async () => {
    const home = tmp('vmwu-pull-home-');
    const pushed = await push('pushone:1.0.0', 'lab/tampered:v1', ['--with-base']);
    const manifestDir = join(work, 'tampered-manifest');
    execFileSync('skopeo', ['copy', '-q', '--src-creds', `${reg.user}:${reg.password}`, '--src-cert-dir', reg.certDir, `docker://${reg.host}/lab/tampered@${pushed.digest}`, `dir:${manifestDir}`]);
    const layers = (JSON.parse(readFileSync(join(manifestDir, 'manifest.json'), 'utf8')) as { layers: { mediaType: string; digest: string }[] }).layers;
    const layer = layers.find((l) => l.mediaType === 'application/vnd.vmwu.layer.v1.qcow2')!;
    const data = blobData(layer.digest);
    const real = readFileSync(data);
    const bad = Buffer.from(real);
    bad[bad.length - 1]! ^= 0xff;
    writeFileSync(data, bad);
    try {
      const before = await snapshot(home);
      const r = await pull(home, `${reg.host}/lab/tampered:v1`);
      assert.notEqual(r.code, 0, 'a tampered layer was accepted');
      assert.match(r.stderr, /does not match its digest/);
      assert.deepEqual(await snapshot(home), before);
    } finally {
      writeFileSync(data, real);
    }
  });

  test('signed bundles: export --sign, checked by vmwu verify, import --verify and OpenSSL; a changed byte is refused', async () => {
    const file = join(work, 'pushone.vmwu');
    ok(await vmwu(['export', 'pushone:1.0.0', '-o', file, '--with-base', '--sign', join(keys, 'lab.key')]), 'vmwu export --sign');
    assert.ok(existsSync(`${file}.sig`));
    ok(await vmwu(['verify', file, '--key', join(keys, 'lab.pub')]), 'vmwu verify bundle');
    writeFileSync(join(work, 'bundle.der'), Buffer.from(readFileSync(`${file}.sig`, 'utf8'), 'base64'));
    assert.match(execFileSync('openssl', ['dgst', '-sha256', '-verify', join(keys, 'lab.pub'), '-signature', join(work, 'bundle.der'), file]).toString(), /Verified OK/);
    const other = await vmwu(['verify', file, '--key', join(keys, 'other.pub')]);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /does not verify/);
    const home = tmp('vmwu-pull-home-');
    const refused = await vmwu(['import', file, '--verify', join(keys, 'other.pub')], { VMWU_HOME: home });
    assert.notEqual(refused.code, 0);
    ok(await vmwu(['import', file, '--verify', join(keys, 'lab.pub')], { VMWU_HOME: home }), 'vmwu import --verify');
    const b = readFileSync(file);
    b[b.length >> 1]! ^= 0x01;
    writeFileSync(file, b);
    const changed = await vmwu(['verify', file, '--key', join(keys, 'lab.pub')]);
    assert.notEqual(changed.code, 0);
    assert.match(changed.stderr, /does not verify/);
  });
});
