import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Digest } from '../../../src/store/blobs.js';
import { pickTemplate, planBuild } from '../../../src/unit/build-plan.js';
import type { Layer } from '../../../src/unit/records.js';

const root = `sha256:${'0'.repeat(64)}` as Digest;
let n = 0;
function layer(packages: string[], key = `key-${packages.join(',')}`): Layer {
  const digest = `sha256:${String(++n).padStart(64, '0')}` as Digest;
  return { digest, parent: root, baseDigest: root, kind: 'packages', packages, key, size: 1, createdAt: '' };
}
const keys = { baseRoot: root, buildKey: 'build', packageKey: 'key-python3,jq' };
const files = [{ from: '/spec/app', to: '/app' }];

test('packages and files, nothing cached: one boot makes both layers, on the base', () => {
  const p = planBuild({ packages: ['python3', 'jq'], files, setup: 'make' }, { ...keys, packageLayers: [] });
  assert.equal(p.parent, root);
  assert.equal(p.template, null);
  assert.deepEqual(p.steps.map((s) => s.meta), [
    { kind: 'packages', key: 'key-python3,jq', packages: ['python3', 'jq'] },
    { kind: 'app', key: 'build', packages: ['python3', 'jq'] },
  ]);
  assert.deepEqual(p.steps[0]!.step, { packages: ['python3', 'jq'], files: [], setup: null });
  assert.deepEqual(p.steps[1]!.step, { packages: [], files: [{ input: 'file0', to: '/app', name: 'app' }], setup: 'setup.sh' });
});

test('a cached package layer leaves only the files step, on that layer', () => {
  const cached = layer(['python3', 'jq']);
  const p = planBuild({ packages: ['python3', 'jq'], files, setup: null }, { ...keys, packageLayers: [layer(['python3']), cached] });
  assert.equal(p.parent, cached.digest);
  assert.equal(p.template, null);
  assert.deepEqual(p.steps.map((s) => s.meta.kind), ['app']);
});

test('packages only: one step; on the largest template, installing only the difference', () => {
  const py = layer(['python3']);
  const pyBc = layer(['python3', 'bc']);
  const p = planBuild({ packages: ['python3', 'bc', 'jq'], files: [], setup: null }, { ...keys, packageKey: 'new', packageLayers: [py, pyBc, layer(['numpy'])] });
  assert.equal(p.template, pyBc);
  assert.equal(p.parent, pyBc.digest);
  assert.deepEqual(p.steps.map((s) => s.step.packages), [['jq']]);
  assert.deepEqual(p.steps[0]!.meta.packages, ['python3', 'bc', 'jq'], 'the layer is keyed by the whole set');
});

test('no packages: the files step on the base; nothing to do: no step', () => {
  const p = planBuild({ packages: [], files: [], setup: 'echo hi' }, { ...keys, packageLayers: [layer(['python3'])] });
  assert.equal(p.parent, root);
  assert.deepEqual(p.steps.map((s) => s.meta.kind), ['app']);
  assert.deepEqual(planBuild({ packages: [], files: [], setup: null }, { ...keys, packageLayers: [] }), { parent: root, template: null, steps: [] });
});

test('a template has only wanted packages, and fewer than wanted', () => {
  assert.equal(pickTemplate([layer(['python3', 'numpy'])], ['python3', 'jq']), null);
  assert.equal(pickTemplate([layer(['python3', 'jq'])], ['python3', 'jq']), null);
  const a = layer(['jq']);
  assert.equal(pickTemplate([a, layer(['python3', 'numpy'])], ['python3', 'jq']), a);
});
