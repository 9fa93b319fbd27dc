import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkpointMarginS, slurmResources, batchScript } from '../../../../src/executors/slurm/batch-script.js';
import { fastStartShape, goLine } from '../../../../src/run/fast-start/clone.js';
import { templateKey, templateVmSpec, type TemplateShape } from '../../../../src/run/fast-start/template.js';
import { instancePaths } from '../../../../src/run/instance.js';
import { bootHeaderBytes } from '../../../../src/run/fast-start/boot-stub.js';
import { buildQemuArgv } from '../../../../src/vm/argv.js';
import { parseReportName, reportName } from '../../../../src/sweep/batch/task-files.js';

const shape: TemplateShape = {
  accel: 'tcg', memoryMiB: 256, cpus: 1, boot: { kind: 'kernel', kernel: '/b/k', initrd: '/b/i', cmdline: 'console=ttyS0' },
  root: `/b/${'a'.repeat(64)}`, virtualSize: 1 << 30, app: false, data: [], network: false, tscKhz: 2_000_000, cpuModel: 'max', qemu: '/usr/bin/qemu:1:2',
};

test('a template key changes with every input it depends on, and only with those', () => {
  const k = templateKey(shape);
  assert.equal(templateKey({ ...shape }), k);
  const changed: Partial<TemplateShape>[] = [
    { root: `/b/${'b'.repeat(64)}` }, { memoryMiB: 512 }, { cpus: 2 }, { app: true }, { network: true }, { qemu: '/usr/bin/qemu:1:3' },
    { boot: { ...shape.boot, kernel: '/b/k2' } }, { boot: { ...shape.boot, cmdline: 'console=ttyS0 quiet' } }, { accel: 'kvm' }, { tscKhz: 1 }, { cpuModel: 'qemu64' }, { data: [64 * 1024 ** 3] },
  ];
  for (const c of changed) assert.notEqual(templateKey({ ...shape, ...c }), k, JSON.stringify(c));
});

test('a clone has exactly the template\'s devices, memory backend and command line; only files and sharing differ', () => {
  const p = instancePaths('/s/x', { stdout: '/l/o', stderr: '/l/e', console: '/l/c' }, 'x');
  const q = instancePaths('/s/y', { stdout: '/l/o', stderr: '/l/e', console: '/l/c' }, 'y');
  const template = { state: '/t/state', bootStub: { kernel: '/t/kernel-header', initrd: '/t/initrd-empty' } };
  const t = buildQemuArgv(templateVmSpec(shape, 'template', { name: 'x', paths: p, memory: '/t/memory', template }));
  const c = buildQemuArgv(templateVmSpec(shape, 'clone', { name: 'x', paths: q, memory: '/t/memory', template }));
  const strip = (a: string[]) => a.join(' ').replaceAll('/s/x', 'S').replaceAll('/s/y', 'S').replace('share=on', 'share=?').replace('share=off', 'share=?')
    .replace(' -incoming defer', '').replace(' -no-shutdown', '')
    .replace(`-kernel ${shape.boot.kernel} -initrd ${shape.boot.initrd}`, 'BOOT').replace('-kernel /t/kernel-header -initrd /t/initrd-empty', 'BOOT');
  assert.equal(strip(c), strip(t));
  assert.match(t.join(' '), /vmwu\.wait=1/);
  assert.match(t.join(' '), /-cpu max/, 'the template and its clones run the chosen CPU model');
  assert.match(c.join(' '), /-incoming defer/);
  assert.match(c.join(' '), /-kernel \/t\/kernel-header -initrd \/t\/initrd-empty/, 'a clone runs neither: QEMU is given the stub');
  const spec = templateVmSpec(shape, 'clone', { name: 'x', paths: q, memory: '/t/memory', template });
  assert.equal(spec.boot.kind === 'kernel' && spec.boot.kernel, shape.boot.kernel, 'the spec names the kernel the guest runs: a checkpoint records it');
});

test('a clone\'s kernel stub keeps a bzImage\'s real-mode sectors and one page; anything else is refused', () => {
  const k = Buffer.alloc(1024);
  k.write('HdrS', 0x202, 'latin1');
  k[0x1f1] = 27;
  assert.equal(bootHeaderBytes(k), 28 * 512 + 4096);
  k[0x1f1] = 0;
  assert.equal(bootHeaderBytes(k), 5 * 512 + 4096, 'setup_sects 0 means 4');
  assert.throws(() => bootHeaderBytes(Buffer.alloc(1024)), /not a Linux bzImage/);
});

test('builds, --cold and firmware-booted images boot; only the last says why', () => {
  const ctx = { accel: { accel: 'tcg' as const }, image: { boot: shape.boot, root: shape.root, virtualSize: shape.virtualSize }, templates: { dir: '/t', instances: '/i', store: '/s', driver: { name: 'x', launch: () => Promise.reject(new Error('no')) } } };
  const req = { memoryMiB: 256, cpus: 1 };
  assert.equal(typeof fastStartShape(ctx, req, 1), 'object');
  assert.equal(fastStartShape(ctx, { ...req, cold: true }, 1), '');
  assert.equal(fastStartShape(ctx, { ...req, keepRoot: '/x' }, 1), '');
  assert.equal(fastStartShape({ ...ctx, templates: undefined }, req, 1), '');
  assert.match(String(fastStartShape({ ...ctx, image: { ...ctx.image, boot: { kind: 'bios' } } }, req, 1)), /firmware/);
});

test('the go line carries the clock in ns, a 32-byte seed, the output sectors and the input archive length', () => {
  assert.equal(goLine(1_700_000_000_123, Buffer.alloc(32, 0xab), 4096, 10240), `go 1700000000123000000 ${'ab'.repeat(32)} 4096 10240\n`);
});

test('allocations shorter than the job: the time limit is the allocation, USR1 comes a margin before it', () => {
  assert.equal(checkpointMarginS(60_000), 20);
  assert.equal(checkpointMarginS(3600_000), 60);
  const r = slurmResources({ memoryMiB: 128, cpus: 1, timeoutMs: 600_000 }, 60_000);
  assert.deepEqual(r, { memMiB: 384, cpus: 1, timeMin: 1, checkpointAtS: 20 });
  assert.equal(slurmResources({ memoryMiB: 128, cpus: 1, timeoutMs: 600_000 }).checkpointAtS, undefined);
  const script = batchScript({
    experiment: 'e', round: 1, chunk: { offset: 0, taskIds: [1], jobs: [1] }, resources: r, options: {}, tasksDir: '/t', node: '/n', vmwuJs: '/v', logDir: '/l',
  });
  assert.match(script, /^#SBATCH --time=00:01:00$/m);
  assert.match(script, /^#SBATCH --signal=B:USR1@20$/m);
  assert.match(script, /^exec "\$NODE"/m, 'the batch shell becomes vmwu, which B: signals reach');
});

test('checkpoint reports are named by their id; other names are not reports', () => {
  assert.equal(reportName(3, 2, 'ck-0123456789ab'), '3.2.ck-0123456789ab.json');
  assert.deepEqual(parseReportName('3.2.ck-0123456789ab.json'), { job: 3, attempt: 2, kind: 'checkpoint', tag: 'ck-0123456789ab' });
  assert.deepEqual(parseReportName('3.2.done.json'), { job: 3, attempt: 2, kind: 'done', tag: 'done' });
  assert.equal(parseReportName('3.2.ck-../x.json'), undefined);
});
