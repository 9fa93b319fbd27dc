/**
 * Container images in, units out (issue 22):
 *  1. `vmwu base pull` of a ~100 MB image against its floor, `skopeo copy` plus
 *     `umoci unpack` alone (target ≤ 1.5×);
 *  2. a second image sharing the first one's base layer: only its own layer is converted;
 *  3. the bundle of mandelbrot with its base, zstd-compressed layers against plain ones
 *     and against gzip of the plain bundle;
 *  4. job time of that compressed unit against the plain one (target ≤ 5 % slower),
 *     for mandelbrot and for a job that reads all of /usr.
 *
 *   node dist/bench/images.js [runs]     (throw-away stores in /tmp; needs mmdebstrap and the Debian mirror; ~20 min)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot } from '../src/paths.js';
import { median } from './stats.js';

// Every `vmwu run` here is timed work: the result cache must not answer it (the rows that measure the cache turn it on).
process.env.VMWU_RESULT_CACHE ??= 'off';

const runs = Number(process.argv[2] ?? 3);
const work = mkdtempSync(join(tmpdir(), 'vmwu-bench-images-'));
const vmwuJs = join(packageRoot, 'bin', 'vmwu.js');

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 64 * 1024 ** 2 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { ms: number; stdout: string } {
  const t = performance.now();
  const stdout = sh(cmd, args, env);
  return { ms: performance.now() - t, stdout };
}

const vmwu = (home: string, args: string[], env: NodeJS.ProcessEnv = {}) => timed(process.execPath, [vmwuJs, ...args], { VMWU_HOME: home, VMWU_ACCEL: 'tcg', ...env });
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** A Debian minbase root with python3 (about 100 MB compressed as a layer), made an OCI image by umoci; a second image adds one layer to it. */
function makeImages(): { first: string; second: string; layerBytes: number } {
  const layout = join(work, 'layout');
  const tarball = join(work, 'rootfs.tar');
  console.log('making the test images (mmdebstrap minbase + python3, umoci)…');
  sh('mmdebstrap', ['--quiet', '--variant=minbase', '--include=python3', '--format=tar', 'bookworm', tarball]);
  sh('umoci', ['init', '--layout', layout]);
  sh('umoci', ['new', '--image', `${layout}:v1`]);
  sh('umoci', ['raw', 'add-layer', '--image', `${layout}:v1`, tarball]);
  const bundle = join(work, 'bundle');
  sh('umoci', ['unpack', '--rootless', '--image', `${layout}:v1`, bundle]);
  mkdirSync(join(bundle, 'rootfs', 'opt', 'tool'), { recursive: true });
  writeFileSync(join(bundle, 'rootfs', 'opt', 'tool', 'data.bin'), Buffer.alloc(8 * 1024 ** 2, 7));
  sh('umoci', ['repack', '--image', `${layout}:v2`, bundle]);
  rmSync(bundle, { recursive: true, force: true });
  const index = JSON.parse(sh('skopeo', ['inspect', '--raw', `oci:${layout}:v1`])) as { layers: { size: number }[] };
  return { first: `oci:${layout}:v1`, second: `oci:${layout}:v2`, layerBytes: index.layers.reduce((n, l) => n + l.size, 0) };
}

/** A store whose kernel and initramfs for image bases are made, so that a pull's time is its own. */
function warmStore(name: string): string {
  const home = join(work, name);
  const bb = join(work, 'warm');
  if (!statSafe(join(bb, 'index.json'))) {
    sh('umoci', ['init', '--layout', bb]);
    sh('umoci', ['new', '--image', `${bb}:v1`]);
    const b = join(work, 'warm-bundle');
    sh('umoci', ['unpack', '--rootless', '--image', `${bb}:v1`, b]);
    writeFileSync(join(b, 'rootfs', 'hello'), 'hello\n');
    sh('umoci', ['repack', '--image', `${bb}:v1`, b]);
    rmSync(b, { recursive: true, force: true });
  }
  vmwu(home, ['base', 'pull', `oci:${bb}:v1`, '--name', 'warm']);
  return home;
}

function statSafe(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

function pullBench(images: { first: string; second: string; layerBytes: number }): void {
  console.log(`\n== 1. pull and convert: ${mb(images.layerBytes)} of compressed layers, ${runs} runs (medians)`);
  const floors: number[] = [];
  const pulls: number[] = [];
  const seconds: number[] = [];
  for (let i = 0; i < runs; i++) {
    const dest = join(work, `floor-${i}`);
    const copy = timed('skopeo', ['copy', '-q', images.first, `oci:${dest}:v1`]);
    const unpack = timed('umoci', ['unpack', '--rootless', '--image', `${dest}:v1`, join(work, `floor-bundle-${i}`)]);
    floors.push(copy.ms + unpack.ms);
    rmSync(dest, { recursive: true, force: true });
    rmSync(join(work, `floor-bundle-${i}`), { recursive: true, force: true });

    const home = warmStore(`pull-${i}`);
    const pull = vmwu(home, ['base', 'pull', images.first, '--name', 'first', '--json']);
    pulls.push(pull.ms);
    const second = vmwu(home, ['base', 'pull', images.second, '--name', 'second', '--json']);
    const converted = (JSON.parse(second.stdout) as { converted: number; layerCount: number });
    if (converted.converted !== 1) throw new Error(`the second image converted ${converted.converted} layers, expected only its own`);
    seconds.push(second.ms);
    rmSync(home, { recursive: true, force: true });
  }
  const floor = median(floors);
  const pull = median(pulls);
  console.log(`floor: skopeo copy + umoci unpack --rootless       ${s(floor)}`);
  console.log(`vmwu base pull (skopeo copy + convert to qcow2)    ${s(pull)}   ratio ${(pull / floor).toFixed(2)}× (target ≤ 1.5×)`);
  console.log(`== 2. a second image sharing that base layer: ${s(median(seconds))} (1 of 2 layers converted), ${((median(seconds) / pull) * 100).toFixed(0)} % of the first pull`);
}

/** Debian base and mandelbrot in a store with `compression`; returns the store. */
function mandelbrotStore(compression: 'zstd' | 'none'): string {
  const home = join(work, `mandelbrot-${compression}`);
  const env = { VMWU_LAYER_COMPRESSION: compression };
  console.log(`building the Debian base and mandelbrot with ${compression} layers…`);
  vmwu(home, ['base', 'build', 'debian'], env);
  vmwu(home, ['build', join(packageRoot, 'examples', 'mandelbrot'), '-q'], env);
  return home;
}

function bundleBench(zstd: string, plain: string): void {
  console.log('\n== 3. bundle of mandelbrot with its base');
  const size = (home: string, name: string) => {
    const out = join(work, name);
    vmwu(home, ['export', 'mandelbrot', '--with-base', '-o', out]);
    return statSync(out).size;
  };
  const z = size(zstd, 'mandelbrot-zstd.vmwu');
  const p = size(plain, 'mandelbrot-plain.vmwu');
  const gz = Number(execFileSync('sh', ['-c', 'gzip -c "$0" | wc -c', join(work, 'mandelbrot-plain.vmwu')]).toString().trim());
  console.log(`plain layers (as before this issue; 621 MB recorded then)   ${mb(p)}`);
  console.log(`gzip -6 of that plain bundle                                 ${mb(gz)}   ${(gz / p * 100).toFixed(0)} %`);
  console.log(`zstd-compressed layers, read in place                        ${mb(z)}   ${(z / p * 100).toFixed(0)} % of plain, ${(z / gz * 100).toFixed(0)} % of gzip`);
}

function jobBench(zstd: string, plain: string): void {
  console.log(`\n== 4. job time, compressed unit vs plain, ${runs} alternating runs (medians of the whole vmwu run)`);
  const jobs: [string, string[]][] = [
    ['mandelbrot 1600×800', ['run', 'mandelbrot']],
    ['read all of /usr (tar | wc -c)', ['run', 'mandelbrot', '--', 'sh', '-c', 'tar cf - /usr | wc -c']],
  ];
  for (const [label, args] of jobs) {
    const t = { zstd: [] as number[], none: [] as number[] };
    // One run each first: templates and caches warm on both sides alike.
    vmwu(zstd, args);
    vmwu(plain, args);
    for (let i = 0; i < runs; i++) {
      t.zstd.push(vmwu(zstd, args).ms);
      t.none.push(vmwu(plain, args).ms);
    }
    const z = median(t.zstd);
    const n = median(t.none);
    console.log(`${label.padEnd(32)} plain ${s(n)}   zstd ${s(z)}   ${z >= n ? '+' : ''}${(((z - n) / n) * 100).toFixed(1)} % (target ≤ +5 %)`);
  }
}

try {
  console.log(`machine: ${execFileSync('nproc').toString().trim()} cores, ${execFileSync('uname', ['-r']).toString().trim()}, ${new Date().toISOString()}`);
  pullBench(makeImages());
  const zstd = mandelbrotStore('zstd');
  const plain = mandelbrotStore('none');
  bundleBench(zstd, plain);
  jobBench(zstd, plain);
} finally {
  rmSync(work, { recursive: true, force: true });
}
