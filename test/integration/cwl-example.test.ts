import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { parsePpm } from '../../src/image/ppm.js';
import { debianBase, root, testHome, tmp, vmwu } from '../support/harness.js';

/**
 * examples/cwl: GVA's Mandelbrot demonstration as a CWL workflow, run by cwltool with
 * vmwu-docker as docker: four strips, each in a VM of the mandelbrot unit, gathered
 * into a PNG by netpbm in a VM of another unit. The picture equals the same window
 * rendered whole by one `vmwu run mandelbrot`.
 */

const dir = tmp('vmwu-cwl-example-');

describe('examples/cwl: the Mandelbrot workflow', { timeout: 1_200_000 }, () => {
  test('scattered strips gathered into a PNG equal one whole render', async () => {
    const b = await debianBase();
    assert.equal(b.code, 0, b.stderr);
    const job = join(dir, 'small.yml');
    writeFileSync(job, 'width: 160\nheight: 80\niters: 50\nrow0s: [0, 20, 40, 60]\nrow1s: [20, 40, 60, 80]\n');
    const run = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn('sh', [join(root, 'examples', 'cwl', 'run.sh'), job], { cwd: dir, env: { ...process.env, VMWU_HOME: testHome() }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      c.on('close', (code) => resolve({ code, stderr }));
    });
    assert.equal(run.code, 0, run.stderr.slice(-4000));
    const png = PNG.sync.read(readFileSync(join(dir, 'cwl-out', 'mandelbrot.png')));
    assert.deepEqual([png.width, png.height], [160, 80]);

    const whole = await vmwu(['run', 'mandelbrot', '--param', 'width=160', '--param', 'height=80', '--param', 'iters=50', '--param', 'row0=0', '--param', 'row1=80',
      '--out', join(dir, 'whole')]);
    assert.equal(whole.code, 0, whole.stderr);
    const ppm = parsePpm(readFileSync(join(dir, 'whole', 'work', 'mandelbrot.ppm')));
    const rgb = new Uint8Array(160 * 80 * 3);
    for (let i = 0; i < 160 * 80; i++) rgb.set(png.data.subarray(i * 4, i * 4 + 3), i * 3);
    assert.ok(Buffer.from(rgb).equals(Buffer.from(ppm.rgb)), 'the gathered picture differs from the whole render');
  });
});
