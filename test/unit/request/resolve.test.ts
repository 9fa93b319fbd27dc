import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { resolveRequest, runRequestOf, SESSION_MS } from '../../../src/request/resolve.js';
import { registerBase } from '../../../src/store/bases.js';
import type { Digest } from '../../../src/store/blobs.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { upsertUnit } from '../../../src/unit/records.js';

/**
 * One rule for every caller (run, shell, sweep, dashboard): the flag, else the
 * unit's value, else the store's default; firmware bases refused where they
 * cannot run (sweeps), in one place.
 */
const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

function store(): Store {
  const root = mkdtempSync(join(tmpdir(), 'vmwu-request-'));
  const s = openStore(root);
  writeFileSync(join(root, 'config.yaml'), 'defaults:\n  memory: 300M\n  cpus: 1\n  timeout: 7m\n  maxOutput: 1G\n');
  registerBase(s.db, { name: 'kbase', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
  registerBase(s.db, { name: 'fwbase', digest: d('4'), arch: 'x86_64', os: 'linux', description: '', boot: 'bios', kernel: null, initrd: null, root: d('5'), cmdline: '', size: 0, virtualSize: 0 });
  upsertUnit(s.db, d('9'), {
    name: 'calc', version: '1.0.0', base: 'kbase', baseDigest: d('0'), top: d('8'), chain: [d('8')], run: ['/app/run', '${n}'],
    params: { n: { default: '5', type: 'int' } }, outputs: ['*.out'], resources: { memoryMiB: 512, timeoutMs: 60_000 }, network: true,
    buildKey: 'k', packages: [], createdAt: new Date().toISOString(),
  });
  upsertUnit(s.db, d('a'), {
    name: 'reader', version: '1.0.0', base: 'kbase', baseDigest: d('0'), top: d('8'), chain: [d('8')], run: ['cat'], params: {}, outputs: [],
    resources: {}, network: false, stdin: 'in.txt', buildKey: 'k2', packages: [], createdAt: new Date().toISOString(),
  });
  return s;
}

test('flag, else the unit\'s value, else the default, for every purpose', async () => {
  const s = store();
  try {
    for (const purpose of ['run', 'sweep'] as const) {
      const r = await resolveRequest(s, { unit: 'calc' }, purpose);
      assert.deepEqual([r.resources.memoryMiB, r.resources.cpus, r.resources.timeoutMs, r.resources.maxOutputBytes], [512, 1, 60_000, 1024 ** 3], purpose);
      assert.deepEqual(r.argv, ['/app/run', '${n}']);
      assert.deepEqual(r.params, { n: '5' });
      assert.deepEqual(r.keep, ['*.out']);
      assert.equal(r.network, true, 'the unit asks for a network');
      const f = await resolveRequest(s, { unit: 'calc', memory: '1G', cpus: '2', timeout: '1h', params: { n: '9' }, command: ['true'], keep: ['x'] }, purpose);
      assert.deepEqual([f.resources.memoryMiB, f.resources.cpus, f.resources.timeoutMs], [1024, 2, 3_600_000]);
      assert.deepEqual([f.argv, f.params, f.keep], [['true'], { n: '9' }, ['x']]);
    }
    const b = await resolveRequest(s, { base: 'kbase', command: ['true'] }, 'run');
    assert.deepEqual([b.resources.memoryMiB, b.resources.timeoutMs, b.target.base, b.target.label], [300, 7 * 60_000, d('0'), 'kbase'], 'the store\'s defaults');
    assert.equal((await resolveRequest(s, { unit: 'calc' }, 'shell')).resources.timeoutMs, SESSION_MS, 'a shell is a session');
    assert.deepEqual((await resolveRequest(s, { unit: 'reader' }, 'run')).resources.stdin, { work: 'in.txt' });
    assert.equal((await resolveRequest(s, { unit: 'reader' }, 'shell')).resources.stdin, undefined, 'a shell reads the terminal');
    assert.deepEqual(runRequestOf(await resolveRequest(s, { unit: 'calc' }, 'run')).layers, [d('8')]);
  } finally {
    s.close();
  }
});

test('a job is checkpointable when asked, when checkpointed every so often, or at the end of each Slurm allocation', async () => {
  const s = store();
  try {
    const of = async (f: Parameters<typeof resolveRequest>[1], purpose: 'run' | 'sweep' = 'sweep') => runRequestOf(await resolveRequest(s, { unit: 'calc', ...f }, purpose)).checkpointable;
    assert.equal(await of({}), undefined);
    assert.equal(await of({ checkpointable: true }, 'run'), true);
    assert.equal(await of({ checkpointEvery: '10m' }), true);
    assert.equal(await of({ executor: 'slurm', slurmTime: '30m' }), true);
    await assert.rejects(resolveRequest(s, { unit: 'calc', checkpointable: true, nodes: '2' }, 'run'), (e: unknown) => isVmwuError(e) && e.code === 'BAD_NODES');
  } finally {
    s.close();
  }
});

test('refusals: a param of the wrong type, a bad number, unit and base together, a firmware base for a sweep (and only there)', async () => {
  const s = store();
  try {
    const refused = async (p: Promise<unknown>, code: string, why: RegExp) =>
      assert.rejects(p, (e: unknown) => (isVmwuError(e) && e.code === code && why.test(e.message)) || assert.fail(String(e)));
    await refused(resolveRequest(s, { unit: 'calc', params: { n: 'many' } }, 'run'), 'BAD_PARAM', /n is a int parameter/);
    await refused(resolveRequest(s, { unit: 'calc', cpus: '0' }, 'sweep'), 'BAD_VALUE', /--cpus 0/);
    await refused(resolveRequest(s, { unit: 'calc', base: 'kbase' }, 'sweep'), 'BAD_OPTION', /not both/);
    await refused(resolveRequest(s, { unit: 'nope' }, 'run'), 'NO_UNIT', /no unit "nope"/);
    await refused(resolveRequest(s, { base: 'fwbase' }, 'sweep'), 'UNSUPPORTED_BASE', /boots with firmware/);
    assert.equal((await resolveRequest(s, { base: 'fwbase', command: ['x'] }, 'run')).target.base, d('4'), 'vmwu run boots firmware images');
    await refused(resolveRequest(s, { base: 'kbase', stdin: '/nonexistent/in' }, 'run'), 'BAD_INPUT', /--stdin .*: no such file/);
  } finally {
    s.close();
  }
});

test('the executor and its options are checked with the request', async () => {
  const s = store();
  try {
    assert.deepEqual((await resolveRequest(s, { base: 'kbase' }, 'sweep')).executor, { kind: 'local', options: {} });
    assert.deepEqual((await resolveRequest(s, { base: 'kbase', executor: 'ssh', hosts: 'zone=a', hostTimeout: '30s' }, 'sweep')).executor,
      { kind: 'ssh', options: { hosts: 'zone=a', hostTimeoutMs: 30_000 } });
    assert.deepEqual((await resolveRequest(s, { base: 'kbase', executor: 'slurm', partition: 'short' }, 'sweep', { slots: 4 })).executor,
      { kind: 'slurm', options: { partition: 'short', maxParallel: 4 } }, 'a sweep\'s slots are Slurm\'s tasks at once without --max-parallel');
    await assert.rejects(resolveRequest(s, { base: 'kbase', partition: 'short' }, 'sweep'), /go with --executor slurm/);
    await assert.rejects(resolveRequest(s, { base: 'kbase', executor: 'slurm', slurmOpt: ['qos=x'] }, 'sweep'), /expected one sbatch option/);
  } finally {
    s.close();
  }
});
