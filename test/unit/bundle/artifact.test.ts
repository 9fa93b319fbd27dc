import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BLOB_MEDIA_TYPES, checkArtifactLayers, OVF_MEDIA_TYPE, readUnitArtifact, UNIT_CONFIG, unitArtifact } from '../../../src/bundle/artifact.js';
import type { BundleManifest } from '../../../src/bundle/manifest.js';
import { unitRef } from '../../../src/bundle/registry-ref.js';
import { byDigest, repositoryOf } from '../../../src/oci/reference.js';
import { digestString } from '../../../src/store/blobs.js';

const layer = digestString('layer');
const root = digestString('root');
const m = {
  createdAt: '2026-12-05T00:00:00.000Z', unit: { name: 'u', version: '1.0.0', digest: digestString('u') },
  ovf: { digest: digestString('<ovf/>'), size: 6 },
  blobs: [{ digest: layer, size: 10, role: 'layer' }, { digest: root, size: 20, role: 'root' }],
} as unknown as BundleManifest;

test('a unit artifact: config is the bundle manifest, layers the OVF and the blobs in order, vmwu media types', () => {
  const a = unitArtifact('{"m":1}\n', m, '<ovf/>');
  assert.equal(a.manifest.config.mediaType, UNIT_CONFIG);
  assert.equal(a.manifest.config.digest, digestString('{"m":1}\n'));
  assert.deepEqual(a.manifest.layers.map((l) => [l.mediaType, l.digest]), [[OVF_MEDIA_TYPE, m.ovf.digest], [BLOB_MEDIA_TYPES.layer, layer], [BLOB_MEDIA_TYPES.root, root]]);
  assert.equal(a.digest, digestString(a.bytes.toString()));
  assert.equal(a.manifest.annotations['org.opencontainers.image.title'], 'u:1.0.0');
  // Read back, and checked against the unit it carries.
  const back = readUnitArtifact(a.bytes, 'r');
  checkArtifactLayers(back.layers, m, 'r');
  const swapped = [back.layers[0]!, back.layers[2]!, back.layers[1]!];
  assert.throws(() => checkArtifactLayers(swapped, m, 'r'), /layer 1 is .* expected/);
  assert.throws(() => checkArtifactLayers(back.layers.slice(0, 2), m, 'r'), /2 layer\(s\), the unit lists 3/);
});

test('a container image or an index is not a unit, and says what to do instead', () => {
  const image = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: root, size: 1 }, layers: [] }));
  assert.throws(() => readUnitArtifact(image, 'r'), /not a vmwu unit.*/);
  assert.throws(() => readUnitArtifact(image, 'r'), (e: Error & { hint?: string }) => /vmwu base pull/.test(e.hint ?? ''));
  assert.throws(() => readUnitArtifact(Buffer.from('{"schemaVersion":2,"manifests":[]}'), 'r'), /not a single OCI manifest/);
  assert.throws(() => readUnitArtifact(Buffer.from('not json'), 'r'), /not a JSON manifest/);
});

test('unit references: docker:// is optional; a layout stays; archives are refused; pinning keeps the repository', () => {
  assert.deepEqual(unitRef('localhost:5000/lab/u:1'), { transport: 'docker', rest: 'localhost:5000/lab/u:1' });
  assert.deepEqual(unitRef('docker://localhost:5000/lab/u:1'), { transport: 'docker', rest: 'localhost:5000/lab/u:1' });
  assert.equal(unitRef('oci:/tmp/layout:t').transport, 'oci');
  assert.throws(() => unitRef('oci-archive:/tmp/x.tar'), /not oci-archive/);
  const r = unitRef('localhost:5000/lab/u:1');
  assert.equal(repositoryOf(r), 'localhost:5000/lab/u');
  assert.equal(repositoryOf(unitRef(`localhost:5000/lab/u@${root}`)), 'localhost:5000/lab/u');
  assert.deepEqual(byDigest(r, layer), { transport: 'docker', rest: `localhost:5000/lab/u@${layer}` });
  assert.equal(repositoryOf(unitRef('localhost:5000/lab/u')), 'localhost:5000/lab/u', 'a port is not a tag');
});
