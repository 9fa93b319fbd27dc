import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { VmwuError } from '../../../src/errors.js';
import { limitedArgv, runTool } from '../../../src/image/tool.js';
import { convertLimits, imageSpec, runQemuImg } from '../../../src/image/untrusted-image.js';

const MiB = 1024 ** 2;
const dir = mkdtempSync(join(tmpdir(), 'vmwu-limits-'));

const limited = (pattern: RegExp) => (e: unknown) => e instanceof VmwuError && e.code === 'TOOL_LIMIT' && pattern.test(e.message);

describe('tools under resource limits (prlimit)', () => {
  test('the argv: soft and hard CPU limits, address space, no core files, optional file size', () => {
    assert.deepEqual(limitedArgv('qemu-img', ['info', 'x'], { cpuSeconds: 2.5, addressSpace: 1e9 }),
      ['prlimit', ['--cpu=3:8', '--as=1000000000', '--core=0', '--', 'qemu-img', 'info', 'x']]);
    assert.deepEqual(limitedArgv('dd', [], { cpuSeconds: 1, addressSpace: 64 * MiB, fileSize: MiB })[1].slice(0, 4),
      ['--cpu=1:6', `--as=${64 * MiB}`, '--core=0', `--fsize=${MiB}`]);
  });

  test('convert limits grow with the virtual size and stay numbers prlimit parses', () => {
    const GiB = 1024 ** 3;
    assert.deepEqual(convertLimits(GiB), { cpuSeconds: 90, addressSpace: 2 * GiB, fileSize: GiB + GiB / 64 + 64 * MiB });
    const absurd = convertLimits(2 ** 63);
    assert.equal(absurd.cpuSeconds, 7 * 24 * 3600);
    assert.equal(absurd.fileSize, Number.MAX_SAFE_INTEGER);
    assert.match(limitedArgv('qemu-img', [], absurd)[1].join(' '), /^--cpu=604800:604805 --as=2147483648 --core=0 --fsize=9007199254740991 /);
  });

  test('a tool that spins is stopped by its CPU-time limit, and the error says so', async () => {
    await assert.rejects(runTool('sh', ['-c', 'while :; do :; done'], { limits: { cpuSeconds: 1, addressSpace: 256 * MiB } }),
      limited(/sh -c while.*was stopped: it used up its CPU-time limit \(1 s\)/));
  });

  test('a tool that writes too much is stopped by its file-size limit', async () => {
    const out = join(dir, 'big');
    await assert.rejects(runTool('dd', ['if=/dev/zero', `of=${out}`, 'bs=64k', 'count=64'], { limits: { cpuSeconds: 10, addressSpace: 256 * MiB, fileSize: MiB } }),
      limited(/file-size limit \(1048576 bytes\)/));
    assert.equal(statSync(out).size, MiB);
  });

  test('qemu-img that needs more memory than its limit fails with a typed error naming the image', async () => {
    const src = join(dir, 'src.raw');
    await runTool('qemu-img', ['create', '-q', '-f', 'raw', src, '4M']);
    await assert.rejects(runQemuImg(['convert', '-q', '-O', 'qcow2', imageSpec(src, 'raw'), join(dir, 'out.qcow2')], { cpuSeconds: 10, addressSpace: 16 * MiB }, 'disk.raw'),
      limited(/^disk\.raw: qemu-img convert .*address-space limit/));
    // The same under the limits vmwu uses works.
    await runQemuImg(['convert', '-q', '-O', 'qcow2', imageSpec(src, 'raw'), join(dir, 'ok.qcow2')], convertLimits(4 * MiB), 'disk.raw');
    assert.ok(existsSync(join(dir, 'ok.qcow2')));
  });

  test('a missing tool under prlimit is still reported as missing', async () => {
    await assert.rejects(runTool('vmwu-no-such-tool', [], { limits: { cpuSeconds: 1, addressSpace: 64 * MiB } }),
      (e: unknown) => e instanceof VmwuError && e.code === 'TOOL_MISSING' && /cannot run vmwu-no-such-tool: not installed/.test(e.message));
  });
});
