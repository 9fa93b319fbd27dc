import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonical, jobKey, type JobKeyParts } from '../../../src/run/job-key.js';

const base: JobKeyParts = {
  target: { base: `sha256:${'1'.repeat(64)}`, layers: [`sha256:${'2'.repeat(64)}`], paramDefaults: { n: '3' } },
  commands: [{ kind: 'shexec', cmd: 'echo $i > out' }],
  params: { i: '1', j: '2' },
  inputs: [{ path: 'in.txt', digest: `sha256:${'3'.repeat(64)}` }],
  datasets: [],
  stdin: null,
  machine: { cpus: 1, memoryMiB: 256, cpuModel: 'AMD EPYC', cpuNeeds: [], scratchBytes: null, rootBytes: null },
};

test('the same parts give the same key whatever the order of their fields', () => {
  const k = jobKey(base);
  assert.match(k, /^sha256:[0-9a-f]{64}$/);
  assert.equal(jobKey({ ...base, params: { j: '2', i: '1' } }), k);
  assert.equal(canonical({ b: 1, a: [{ d: 2, c: undefined }] }), '{"a":[{"d":2}],"b":1}');
});

test('everything that makes the result changes the key', () => {
  const k = jobKey(base);
  const changed: JobKeyParts[] = [
    { ...base, target: { ...base.target, layers: [`sha256:${'4'.repeat(64)}`] } },
    { ...base, target: { ...base.target, paramDefaults: { n: '4' } } },
    { ...base, commands: [{ kind: 'shexec', cmd: 'echo $i >> out' }] },
    { ...base, params: { i: '2', j: '2' } },
    { ...base, inputs: [{ path: 'in.txt', digest: `sha256:${'5'.repeat(64)}` }] },
    { ...base, datasets: [{ name: 'db', digest: `sha256:${'6'.repeat(64)}` }] },
    { ...base, stdin: `sha256:${'7'.repeat(64)}` },
    { ...base, machine: { ...base.machine, cpus: 2 } },
    { ...base, machine: { ...base.machine, memoryMiB: 512 } },
    { ...base, machine: { ...base.machine, cpuModel: 'Intel Xeon' } },
  ];
  const keys = new Set(changed.map(jobKey));
  assert.equal(keys.size, changed.length);
  assert.equal(keys.has(k), false);
});
