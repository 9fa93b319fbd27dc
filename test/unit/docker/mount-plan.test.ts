import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planMounts } from '../../../src/docker/mount-plan.js';

test('parents are mounted first and unmounted last; read-only mounts are remounted ro; only read-write ones come back', () => {
  const p = planMounts([
    { source: '/h/in.txt', target: '/out/stg/in.txt', readOnly: true, makeMissing: false },
    { source: '/h/out', target: '/out/', readOnly: false, makeMissing: false },
  ]);
  assert.deepEqual(p.inputs, [{ path: '/h/out', name: '.vmwu-mount-1' }, { path: '/h/in.txt', name: '.vmwu-mount-0' }]);
  const setup = p.setup.join('\n');
  assert.ok(setup.indexOf("mount --bind '/job/work/.vmwu-mount-1' '/out'") < setup.indexOf("mount --bind '/job/work/.vmwu-mount-0' '/out/stg/in.txt'"));
  assert.match(setup, /mount -o remount,bind,ro '\/out\/stg\/in.txt'/);
  assert.doesNotMatch(setup, /remount,bind,ro '\/out'/);
  assert.match(p.teardown[0]!, /^umount '\/out\/stg\/in.txt'/);
  assert.match(p.teardown[1]!, /^umount '\/out'/);
  assert.deepEqual(p.copyBack, [{ name: '.vmwu-mount-1', source: '/h/out' }]);
});

test('a mount over /, on a relative path or twice on one target is refused', () => {
  assert.throws(() => planMounts([{ source: '/h', target: '/', readOnly: false, makeMissing: false }]), /cannot mount over \//);
  assert.throws(() => planMounts([{ source: '/h', target: '/a/..', readOnly: false, makeMissing: false }]), /cannot mount over \//);
  assert.throws(() => planMounts([{ source: '/h', target: 'data', readOnly: false, makeMissing: false }]), /must be absolute/);
  assert.throws(() => planMounts([{ source: '/h', target: '/a', readOnly: false, makeMissing: false }, { source: '/g', target: '/a/', readOnly: true, makeMissing: false }]), /mounted twice/);
});

test('a read-only source that came as an image is bound from its dataset, which is then taken away; nothing of it is staged or copied back', () => {
  const mounts = [
    { source: '/h/ref', target: '/ref', readOnly: true, makeMissing: false },
    { source: '/h/genome.fa', target: '/in/genome.fa', readOnly: true, makeMissing: false },
    { source: '/h/out', target: '/out', readOnly: false, makeMissing: false },
  ];
  const p = planMounts(mounts, new Map([[0, {}], [1, { file: 'genome.fa' }], [2, {}]]));
  assert.deepEqual(p.inputs, [{ path: '/h/out', name: '.vmwu-mount-2' }], 'a read-write mount is never an image');
  const setup = p.setup.join('\n');
  assert.match(setup, /mount --bind '\/data\/vmwu-volume-0' '\/ref' \|\| exit 125\nmount -o remount,bind,ro '\/ref' \|\| exit 125\numount '\/data\/vmwu-volume-0' && rmdir '\/data\/vmwu-volume-0'/);
  assert.match(setup, /mount --bind '\/data\/vmwu-volume-1\/genome.fa' '\/in\/genome.fa'/);
  assert.doesNotMatch(p.teardown.join('\n'), /rm -rf/);
  assert.deepEqual(p.copyBack, [{ name: '.vmwu-mount-2', source: '/h/out' }]);
});
