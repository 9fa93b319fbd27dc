import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDockerRun, parseMount, parseVolume } from '../../../src/docker/run-options.js';

test('the command line cwltool writes', () => {
  const r = parseDockerRun(['-i', '--mount=type=bind,source=/tmp/out,target=/zYx', '--mount=type=bind,source=/tmp/in/a.txt,target=/var/lib/cwl/stg1/a.txt,readonly',
    '--workdir=/zYx', '--read-only=true', '--net=none', '--log-driver=none', '--user=1000:1000', '--rm', '--cidfile=/tmp/c.cid',
    '--env=TMPDIR=/tmp', '--env=HOME=/zYx', 'debian:bookworm', 'sh', '-c', 'wc -l < /var/lib/cwl/stg1/a.txt']);
  assert.equal(r.image, 'debian:bookworm');
  assert.deepEqual(r.command, ['sh', '-c', 'wc -l < /var/lib/cwl/stg1/a.txt']);
  assert.deepEqual(r.mounts, [{ source: '/tmp/out', target: '/zYx', readOnly: false, makeMissing: false }, { source: '/tmp/in/a.txt', target: '/var/lib/cwl/stg1/a.txt', readOnly: true, makeMissing: false }]);
  assert.equal(r.interactive && r.remove && r.readOnly, true);
  assert.equal(r.network, 'none');
  assert.equal(r.user, '1000:1000');
  assert.equal(r.cidfile, '/tmp/c.cid');
  assert.deepEqual(r.env, ['TMPDIR=/tmp', 'HOME=/zYx']);
  assert.equal(r.logDriver, 'none');
});

test('older cwltool and user-space runtimes: --volume, grouped short flags, values in the next argument; options end at the image', () => {
  const r = parseDockerRun(['-i', '-v', '/data:/data:ro', '--volume=/out:/out:rw', '-w', '/out', '-eA=1', '-e', 'B', '--memory', '512m', 'img', '--rm', '-v']);
  assert.deepEqual(r.mounts, [{ source: '/data', target: '/data', readOnly: true, makeMissing: true }, { source: '/out', target: '/out', readOnly: false, makeMissing: true }]);
  assert.equal(r.workdir, '/out');
  assert.deepEqual(r.env, ['A=1', 'B']);
  assert.equal(r.memory, '512m');
  assert.equal(r.remove, false, 'after the image, --rm is the command\'s');
  assert.deepEqual(r.command, ['--rm', '-v']);
});

test('what vmwu does not do is refused by name, never dropped', () => {
  assert.throws(() => parseDockerRun(['--privileged', 'img']), /--privileged is not supported by vmwu/);
  assert.throws(() => parseDockerRun(['-t', 'img']), /-t is not supported/);
  assert.throws(() => parseDockerRun(['--net=container:x', 'img']), /--net container:x/);
  assert.throws(() => parseDockerRun(['--rm']), /no image given/);
  assert.throws(() => parseDockerRun(['-v']), /-v needs a value/);
  assert.throws(() => parseVolume('data:/data'), /named volume/);
  assert.throws(() => parseVolume('/a:/b:rx'), /unknown mode "rx"/);
  assert.throws(() => parseMount('type=volume,source=/a,target=/b'), /type volume is not supported/);
  assert.throws(() => parseMount('type=bind,source=/a,target=/b,propagation=shared'), /field "propagation"/);
  assert.deepEqual(parseMount('type=bind,src=/a,dst=/b,readonly=false'), { source: '/a', target: '/b', readOnly: false, makeMissing: false });
});
