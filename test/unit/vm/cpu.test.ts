import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVmwuError } from '../../../src/errors.js';
import { cpuNeeds, guestCpuModel, missingCpuFeatures, normalizeCpuFeature } from '../../../src/vm/cpu.js';
import { buildQemuArgv } from '../../../src/vm/argv.js';
import { ineligible } from '../../../src/executors/ssh/placement.js';

test('guests get every feature the accelerator can give: max under TCG, host under KVM', () => {
  assert.equal(guestCpuModel('tcg'), 'max');
  assert.equal(guestCpuModel('kvm'), 'host');
  const spec = { name: 'x', accel: 'tcg' as const, memoryMiB: 64, cpus: 1, boot: { kind: 'bios' as const }, disks: [], ports: [], network: false };
  assert.deepEqual(buildQemuArgv({ ...spec, cpuModel: 'max' }).join(' ').match(/-cpu \S+/g), ['-cpu max']);
  assert.equal(buildQemuArgv(spec).includes('-cpu'), false, 'no model given (an old checkpoint): QEMU\'s default, as it was saved');
});

test('cpu needs: levels include the ones below, names are normalized however QEMU or Linux spell them', () => {
  const v2 = cpuNeeds(['x86-64-v2'], 'cpu');
  assert.ok(v2.includes('sse4-2') && v2.includes('popcnt') && v2.includes('sse2'), v2.join(' '));
  assert.ok(!v2.includes('avx2'));
  const v3 = cpuNeeds(['X86-64-V3', 'rdtscp'], 'cpu');
  assert.ok(v3.includes('avx2') && v3.includes('fma') && v3.includes('sse4-1') && v3.includes('rdtscp'));
  assert.deepEqual(['sse4.2', 'sse4_2', 'SSE4-2'].map(normalizeCpuFeature), ['sse4-2', 'sse4-2', 'sse4-2']);
  assert.equal(normalizeCpuFeature('pni'), 'sse3');
  assert.throws(() => cpuNeeds(['x86-64-v9!'], 'vmwu.yaml cpu[1]'), (e: unknown) => isVmwuError(e) && e.code === 'BAD_CPU' && e.message.startsWith('vmwu.yaml cpu[1]: '));
});

test('what a host lacks is named; placement skips such a host and says why', () => {
  // /proc/cpuinfo flags of a host without RDTSCP or AVX (like these build machines).
  const host = ['fpu', 'sse', 'sse2', 'pni', 'ssse3', 'sse4_1', 'sse4_2', 'popcnt', 'cx16', 'lahf_lm'];
  assert.deepEqual(missingCpuFeatures(cpuNeeds(['x86-64-v2'], 'cpu'), host), ['cmov', 'cx8', 'fxsr', 'mmx']);
  assert.deepEqual(missingCpuFeatures(['rdtscp', 'sse4-2'], host), ['rdtscp']);
  const needs = { arch: 'x86_64', memoryMiB: 256, needBytes: 1, cpu: ['avx2', 'rdtscp'] };
  const h = { name: 'old', labels: {}, arch: 'x86_64', memMiB: 4096 };
  assert.match(ineligible({ ...h, cpuFeatures: host }, needs, { labels: {}, names: [] }) ?? '', /needs CPU features its guests lack: avx2, rdtscp/);
  assert.equal(ineligible({ ...h, cpuFeatures: [...host, 'avx2', 'rdtscp'] }, needs, { labels: {}, names: [] }), null);
  assert.equal(ineligible(h, needs, { labels: {}, names: [] }), null, 'a host that did not say is tried; it refuses the job itself if it must');
});
