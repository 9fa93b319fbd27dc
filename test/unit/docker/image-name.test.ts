import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dockerNameOfRef, parseDockerImage } from '../../../src/docker/image-name.js';

test('image names as engines write them become skopeo references and docker images rows', () => {
  assert.deepEqual(parseDockerImage('debian:bookworm'), { kind: 'registry', ref: 'docker://docker.io/library/debian:bookworm', repository: 'debian', tag: 'bookworm' });
  assert.deepEqual(parseDockerImage('docker.io/debian:stable-slim'), { kind: 'registry', ref: 'docker://docker.io/library/debian:stable-slim', repository: 'debian', tag: 'stable-slim' });
  assert.deepEqual(parseDockerImage('biocontainers/samtools'), { kind: 'registry', ref: 'docker://docker.io/biocontainers/samtools:latest', repository: 'biocontainers/samtools', tag: 'latest' });
  assert.deepEqual(parseDockerImage('localhost:5000/lab/tool:1.2'), { kind: 'registry', ref: 'docker://localhost:5000/lab/tool:1.2', repository: 'localhost:5000/lab/tool', tag: '1.2' });
  const d = `sha256:${'a'.repeat(64)}`;
  assert.deepEqual(parseDockerImage(`quay.io/x/y@${d}`), { kind: 'registry', ref: `docker://quay.io/x/y@${d}`, repository: 'quay.io/x/y', tag: '<none>' });
  assert.deepEqual(parseDockerImage('vmwu/mandelbrot:1.0.0'), { kind: 'vmwu', name: 'mandelbrot', tag: '1.0.0' });
  assert.deepEqual(parseDockerImage('vmwu/tiny'), { kind: 'vmwu', name: 'tiny', tag: null });
  assert.deepEqual(dockerNameOfRef('docker://docker.io/library/debian:stable-slim'), { repository: 'debian', tag: 'stable-slim' });
  assert.equal(dockerNameOfRef('oci:/x:v1'), null);
});

test('names docker refuses are refused', () => {
  assert.throws(() => parseDockerImage('Debian:12'), /lower case/);
  assert.throws(() => parseDockerImage('a b'), /not an image name/);
  assert.throws(() => parseDockerImage('x@sha256:abc'), /digest/);
});
