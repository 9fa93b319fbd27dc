import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { testHome, tmp, vmwu } from '../support/harness.js';

/**
 * What real science codes need from a job, on real guests (tiny base):
 * datasets attached read-only by digest, a sparse scratch disk that fails
 * clearly when full, and standard input.
 */
interface RunJson {
  id: string; status: string; exitCode: number | null; outDir: string;
  error?: { code: string; message: string; hint?: string }; start?: { mode: string; fallback?: string };
}

const run = async (args: string[]) => {
  const r = await vmwu(['run', '--base', 'tiny', '--json', ...args]);
  return { ...r, json: r.stdout.trim().startsWith('{') ? (JSON.parse(r.stdout) as RunJson) : undefined };
};
const stdoutOf = (j: RunJson) => readFileSync(join(j.outDir, 'stdout'), 'utf8');

describe('datasets, scratch and stdin', { concurrency: false, timeout: 600_000 }, () => {
  const src = tmp('vmwu-data-src-');
  const big = Buffer.alloc(24 * 1024 ** 2);
  for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i * 2654435761 >>> 0, i);
  const bigHash = createHash('sha256').update(big).digest('hex');
  const name = `ref${process.pid}`;

  before(async () => {
    mkdirSync(join(src, 'sub'));
    writeFileSync(join(src, 'big.bin'), big);
    writeFileSync(join(src, 'sub', 'note.txt'), 'reference v1\n');
    const add = await vmwu(['data', 'add', src, '--name', `${name}:1`, '--json']);
    assert.equal(add.code, 0, add.stderr);
    const other = tmp('vmwu-data-src2-');
    writeFileSync(join(other, 'note.txt'), 'reference v2\n');
    assert.equal((await vmwu(['data', 'add', other, '--name', `${name}:2`])).code, 0);
  });

  test('a dataset is read-only at /data/NAME, its bytes intact; a clone of the template sees each job\'s own dataset', async () => {
    const script = `sha256sum /data/${name}/big.bin; cat /data/${name}/sub/note.txt /data/${name}/note.txt 2>/dev/null; grep " /data/${name} " /proc/mounts; `
      + `if touch /data/${name}/x 2>/dev/null; then echo writable; else echo read-only; fi`;
    const first = await run(['--data', `${name}:1`, '--', 'sh', '-c', script]);
    assert.equal(first.code, 0, first.stderr);
    const out = stdoutOf(first.json!);
    assert.match(out, new RegExp(`^${bigHash}  /data/${name}/big.bin$`, 'm'), 'the bytes the guest reads are the file\'s');
    assert.match(out, /^reference v1$/m);
    assert.match(out, new RegExp(`/data/${name} erofs ro`));
    assert.match(out, /^read-only$/m);
    // The same shape again, with the other version: restored from a template, it reads its own disk, nothing cached from another job.
    const second = await run(['--data', `${name}:2`, '--', 'sh', '-c', `cat /data/${name}/note.txt; ls /data/${name}`]);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.json!.start?.mode, 'restore', JSON.stringify(second.json!.start));
    assert.equal(stdoutOf(second.json!), 'reference v2\nnote.txt\n');
  });

  test('a dataset that is not registered is refused before anything boots, with the name and a hint', async () => {
    const r = await run(['--data', 'no-such-data', '--', 'true']);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /no dataset no-such-data:latest/);
    assert.match(r.stderr, /hint: add it with `vmwu data add PATH --name no-such-data`/);
    const clash = await vmwu(['data', 'add', src, '--name', `${name}:2`]);
    assert.equal(clash.code, 125);
    assert.match(clash.stderr, new RegExp(`dataset ${name}:2 exists with other content`));
  });

  test('--scratch: the work dir is a sparse disk of that size; a full one fails the job and says so', async () => {
    const ok = await run(['--scratch', '3G', '--', 'sh', '-c', 'df -k . | tail -n 1; readlink /scratch; echo "$TMPDIR"; dd if=/dev/zero of=f bs=1M count=200 2>/dev/null && rm f && echo wrote']);
    assert.equal(ok.code, 0, ok.stderr);
    const out = stdoutOf(ok.json!);
    const blocks = Number(out.split('\n')[0]!.trim().split(/\s+/)[1]);
    assert.ok(blocks > 2.8 * 1024 ** 2 && blocks < 3.3 * 1024 ** 2, `a 3G work dir, not the root's 1G: ${out}`);
    assert.match(out, /^\/job\/work$/m);
    assert.match(out, /^\/job\/tmp$/m);
    assert.match(out, /^wrote$/m);
    const full = await run(['--scratch', '48M', '--keep', 'none', '--', 'sh', '-c', 'dd if=/dev/zero of=fill bs=1M count=200']);
    assert.equal(full.json?.status, 'failed', full.stdout + full.stderr);
    assert.equal(full.json!.error?.code, 'SCRATCH_FULL');
    assert.match(full.json!.error!.message, /scratch disk \(48 MiB\) was full/);
    assert.match(full.json!.error!.hint ?? '', /--scratch/);
  });

  test('--root-size on a base without resize2fs fails the job with the reason, not a hang', async () => {
    const r = await run(['--root-size', '4G', '--', 'true']);
    assert.equal(r.json?.status, 'error', r.stdout + r.stderr);
    assert.match(r.json!.error!.message, /this base has no resize2fs, so its root cannot grow/);
  });

  test('--stdin feeds a file to the job\'s standard input; a missing one is refused before it boots', async () => {
    const dir = tmp('vmwu-stdin-');
    writeFileSync(join(dir, 'input.pha'), 'MODE MR_AUTO\nHKLIN data.mtz\nEND\n');
    const r = await run(['--stdin', join(dir, 'input.pha'), '--', 'sh', '-c', 'while read -r line; do echo "got: $line"; done; ls']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(stdoutOf(r.json!), 'got: MODE MR_AUTO\ngot: HKLIN data.mtz\ngot: END\n', 'the input, line by line, and nothing of it in the work dir');
    const missing = await run(['--stdin', join(dir, 'nope.pha'), '--', 'cat']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stdout + missing.stderr, /--stdin .*nope\.pha: no such file/);
  });

  test('a unit\'s stdin: names a work-dir file, which a plan stages per job (GVA\'s phaser < input.pha)', async () => {
    const dir = tmp('vmwu-stdin-unit-');
    writeFileSync(join(dir, 'vmwu.yaml'), 'name: stdinunit\nversion: 1.0.0\nbase: tiny\nstdin: input.pha\nrun: cat\n');
    const b = await vmwu(['build', dir, '-q']);
    assert.equal(b.code, 0, b.stderr);
    for (const n of [1, 2]) writeFileSync(join(dir, `input-${n}.pha`), `MODE MR_AUTO\nJOB ${n}\n`);
    writeFileSync(join(dir, 'phaser.pln'), ['parameter n integer range from 1 to 2', 'task main', '    copy root:input-${n}.pha node:input.pha',
      '    shexec "sed \'s/^/read: /\' > log.txt"', '    copy node:log.txt root:log-${n}.txt', 'endtask', ''].join('\n'));
    const name = `stdin-${process.pid}`;
    const sweep = await vmwu(['sweep', join(dir, 'phaser.pln'), '--unit', 'stdinunit', '--name', name, '--retries', '0', '--json']);
    assert.equal(sweep.code, 0, sweep.stderr);
    const results = join(testHome(), 'experiments', name, 'results');
    for (const n of [1, 2]) assert.equal(readFileSync(join(results, `log-${n}.txt`), 'utf8'), `read: MODE MR_AUTO\nread: JOB ${n}\n`, `job ${n} read its own staged file`);
  });
});
