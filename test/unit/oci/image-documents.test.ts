import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseAmd64, isIndex, parseConfig, parseManifest } from '../../../src/oci/image-manifest.js';
import { defaultBaseName, isImageRef, parseImageRef } from '../../../src/oci/reference.js';
import { imageArgv } from '../../../src/request/resolve.js';
import { commandScript } from '../../../src/run/command.js';

const D = (c: string) => `sha256:${c.repeat(64)}`;

test('image references are parsed as skopeo spells them, local paths made absolute', () => {
  assert.deepEqual(parseImageRef('docker://127.0.0.1:5000/tools/blast:2.14'), { transport: 'docker', rest: '127.0.0.1:5000/tools/blast:2.14' });
  assert.equal(parseImageRef(`docker://quay.io/biocontainers/hmmer@${D('a')}`).transport, 'docker');
  assert.equal(parseImageRef('oci:/srv/layout:v2').rest, '/srv/layout:v2');
  assert.ok(parseImageRef('oci-archive:img.tar').rest.startsWith('/'));
  assert.throws(() => parseImageRef('docker://blast'), /HOST\/REPO/);
  assert.throws(() => parseImageRef('debian:bookworm'), /names no transport/);
  assert.throws(() => parseImageRef('docker://h/r:t\n'), /newline/);
  assert.ok(isImageRef('docker-archive:/x.tar') && !isImageRef('tiny'));
  assert.equal(defaultBaseName(parseImageRef('docker://reg:5000/a/b/hmmer:3.3')), 'hmmer:3.3');
  assert.equal(defaultBaseName(parseImageRef('docker://reg/a/blast')), 'blast:latest');
});

test('an index gives its linux/amd64 image, or a refusal naming the platforms it has', () => {
  const idx = (plats: [string, string][]) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: plats.map(([os, architecture], i) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: D(String(i)), size: 1, platform: { os, architecture } })) }));
  const both = idx([['linux', 'arm64'], ['linux', 'amd64']]);
  assert.ok(isIndex(both));
  assert.equal(chooseAmd64(both, 'x').digest, D('1'));
  assert.throws(() => chooseAmd64(idx([['linux', 'arm64'], ['linux', 's390x']]), 'docker://r/x:1'), /no linux\/amd64 image; it has: linux\/arm64, linux\/s390x/);
});

test('a manifest with foreign layers, or a config that is not JSON or lists other layers, is refused', () => {
  const m = (type: string) => Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'c', digest: D('c'), size: 1 }, layers: [{ mediaType: type, digest: D('e'), size: 1 }] }));
  assert.equal(parseManifest(m('application/vnd.oci.image.layer.v1.tar+zstd')).layers[0]!.compression, 'zstd');
  assert.throws(() => parseManifest(m('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip')), /cannot unpack/);
  assert.throws(() => parseConfig(Buffer.from('{not json'), 1), /config is not JSON/);
  assert.throws(() => parseConfig(Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] } })), 1), /lists 0 layers, its manifest 1/);
  const c = parseConfig(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Entrypoint: ['/e'], User: 'sci', Env: ['A=1'] }, rootfs: { type: 'layers', diff_ids: [D('d')] } })), 1);
  assert.deepEqual(c.process, { entrypoint: ['/e'], cmd: [], env: ['A=1'], workingDir: '', user: 'sci' });
});

test('vmwu run --base IMAGE behaves like docker run: args replace Cmd, --entrypoint replaces the entrypoint and drops Cmd', () => {
  const p = { entrypoint: ['/bin/tool', '--fast'], cmd: ['--help'], env: [], workingDir: '', user: '' };
  assert.deepEqual(imageArgv(p, []), ['/bin/tool', '--fast', '--help']);
  assert.deepEqual(imageArgv(p, ['in.fa']), ['/bin/tool', '--fast', 'in.fa']);
  assert.deepEqual(imageArgv(p, ['-c', 'ls'], 'sh'), ['sh', '-c', 'ls']);
  assert.deepEqual(imageArgv(p, ['ls'], ''), ['ls']);
  assert.deepEqual(imageArgv(p, [], ''), []);
});

test('an image job\'s script sets the image\'s env under the params, its dir, and runs as its user through run-as', () => {
  const s = commandScript(['echo', '${x}'], { x: 'param', A: 'from-param' }, { process: { env: ['A=from-image', 'B=b c', 'HOME=/h'], workingDir: '/data', user: 'sci' } });
  assert.match(s, /^mkdir -p '\/data' && cd '\/data' \|\| exit 125$/m);
  assert.doesNotMatch(s, /export A=/, 'a param of the same name wins');
  assert.match(s, /^export B='b c'$/m);
  assert.match(s, /^export PATH='\/usr\/local\/sbin:/m, 'the default PATH when the image sets none');
  assert.doesNotMatch(s, /unset HOME/, 'the image sets HOME');
  assert.match(s, /^exec '\/\.vmwu\/run-as' 'sci' '\/job\/work' 'echo' 'param'$/m);
  assert.match(commandScript(['true'], {}, { process: { env: [], workingDir: '', user: '' } }), /unset HOME\nexport PATH=.*\nexec '\/\.vmwu\/run-as' '0' /);
});
