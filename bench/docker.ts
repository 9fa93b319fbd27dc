/**
 * What a workflow step costs through vmwu-docker (issue 23): cwltool runs a
 * one-step CommandLineTool (wc -l on stdin, test/fixtures/cwl/count-lines.cwl)
 *  1. with --no-container: the engine's own floor;
 *  2. with vmwu-docker on PATH as docker: each step in a VM of the tiny base;
 * and, for scale, the same command as `vmwu run --base tiny` and the result cache
 * taking a sweep job that already succeeded. Then a 200 MiB read-only volume
 * (`docker run -v REF:/ref:ro … wc -c`): copied into each job's input disk, against
 * attached as an image made once (src/docker/volume-images.ts). Medians of N
 * alternating runs.
 *
 *   node dist/bench/docker.js [runs]     (the store in $VMWU_HOME, with the tiny base)
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { spawnSync } from 'node:child_process';
import { packageRoot } from '../src/paths.js';
import { median } from './stats.js';

// Every `vmwu run` here is timed work: the result cache must not answer it (the rows that measure the cache turn it on).
process.env.VMWU_RESULT_CACHE ??= 'off';

const runs = Number(process.argv[2] ?? 7);
const work = mkdtempSync(join(tmpdir(), 'vmwu-bench-docker-'));
const bin = join(work, 'bin');
mkdirSync(bin);
symlinkSync(join(packageRoot, 'bin', 'vmwu-docker.js'), join(bin, 'docker'));
const cwl = join(packageRoot, 'test', 'fixtures', 'cwl');
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };

function timed(cmd: string, args: string[], extra: NodeJS.ProcessEnv = {}): number {
  const out = mkdtempSync(join(work, 'out-'));
  const t = performance.now();
  const r = spawnSync(cmd, args, { cwd: out, env: { ...env, ...extra }, encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return ms;
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const vmwu = (args: string[], extra: NodeJS.ProcessEnv = {}) => timed(process.execPath, [join(packageRoot, 'bin', 'vmwu.js'), ...args], extra);

try {
  const tool = [join(cwl, 'count-lines.cwl'), join(cwl, 'job.yml')];
  const t = { native: [] as number[], vm: [] as number[], run: [] as number[], cached: [] as number[] };
  const plan = join(work, 'one.pln');
  writeFileSync(plan, 'parameter i integer range from 1 to 1\ntask main\n    shexec "wc -l /etc/passwd > out.txt"\nendtask\n');
  // Warm: the tiny base's template, cwltool's own start.
  timed('cwltool', ['--quiet', '--outdir', '.', ...tool]);
  vmwu(['sweep', plan, '--base', 'tiny', '--name', `bench-cache-${process.pid}-0`], { VMWU_RESULT_CACHE: 'on' });
  for (let i = 0; i < runs; i++) {
    t.native.push(timed('cwltool', ['--quiet', '--no-container', '--outdir', '.', ...tool]));
    t.vm.push(timed('cwltool', ['--quiet', '--outdir', '.', ...tool]));
    t.run.push(vmwu(['run', '--base', 'tiny', '--', 'wc', '-l', '/etc/passwd']));
    t.cached.push(vmwu(['sweep', plan, '--base', 'tiny', '--name', `bench-cache-${process.pid}-${i + 1}`], { VMWU_RESULT_CACHE: 'on' }));
  }
  const n = median(t.native);
  const v = median(t.vm);
  console.log(`${runs} runs, medians`);
  console.log(`cwltool --no-container (the floor)            ${s(n)}`);
  console.log(`cwltool with vmwu-docker (one VM per step)    ${s(v)}   +${s(v - n)} per step, ${(v / n).toFixed(2)}×`);
  console.log(`vmwu run --base tiny (the same VM, no engine) ${s(median(t.run))}`);
  console.log(`a one-job sweep the result cache answers      ${s(median(t.cached))}`);

  const ref = join(work, 'ref');
  mkdirSync(ref);
  for (let i = 0; i < 4; i++) writeFileSync(join(ref, `part${i}.bin`), randomBytes(50 * 1024 ** 2));
  const step = ['run', '--rm', '-v', `${ref}:/ref:ro`, 'vmwu/tiny', 'sh', '-c', 'cat /ref/* | wc -c'];
  const made = timed('docker', step, { VMWU_DOCKER_VOLUME_IMAGE_MIN: '0' });
  const vol = { copied: [] as number[], imaged: [] as number[] };
  for (let i = 0; i < runs; i++) {
    vol.copied.push(timed('docker', step, { VMWU_DOCKER_VOLUME_IMAGE_MIN: 'off' }));
    vol.imaged.push(timed('docker', step, { VMWU_DOCKER_VOLUME_IMAGE_MIN: '0' }));
  }
  const c = median(vol.copied);
  const im = median(vol.imaged);
  console.log(`200 MiB read-only volume, copied per job      ${s(c)}`);
  console.log(`  its image made (first job)                  ${s(made)}`);
  console.log(`  attached as that image (every later job)    ${s(im)}   ${(im / c).toFixed(2)}× of the copy`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
