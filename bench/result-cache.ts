/**
 * The result cache (issue 23): a sweep of N jobs run once, then again unchanged
 * (every job answered by the cache: the target is 0 VMs and under 2 s for 100 jobs),
 * then with one parameter value changed (only that job runs). QEMU starts of the
 * unchanged re-run are counted through a wrapper on VMWU_QEMU (another QEMU path is
 * another template, so the third run goes without it).
 *
 *   node dist/bench/result-cache.js [jobs]     (VMWU_HOME must hold the tiny base)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot } from '../src/paths.js';
import { qemuBinary } from '../src/vm/host.js';

const jobs = Number(process.argv[2] ?? 100);
const work = mkdtempSync(join(tmpdir(), 'vmwu-bench-cache-'));
const starts = join(work, 'qemu-starts');
const wrapper = join(work, 'qemu');
writeFileSync(wrapper, `#!/bin/sh\necho start >> '${starts}'\nexec '${qemuBinary}' "$@"\n`, { mode: 0o755 });
const counted = () => (existsSync(starts) ? readFileSync(starts, 'utf8').split('\n').filter(Boolean).length : 0);
const tag = `${process.pid}`;

function plan(values: number[]): string {
  const p = join(work, `plan-${values.join('-').length}-${values[values.length - 1]}.pln`);
  writeFileSync(p, [
    `parameter i integer select anyof ${values.join(' ')}`,
    'task main',
    '    shexec "echo job $i > out.txt"',
    '    copy node:out.txt root:out-$i.txt',
    'endtask', '',
  ].join('\n'));
  return p;
}

function sweep(planFile: string, name: string, env: NodeJS.ProcessEnv = {}): { ms: number; vms: number; cached: number } {
  const before = counted();
  const t = performance.now();
  const r = spawnSync(process.execPath, [join(packageRoot, 'bin', 'vmwu.js'), 'sweep', planFile, '--base', 'tiny', '--name', name, '--memory', '128M'],
    { env: { ...process.env, VMWU_RESULT_CACHE: 'on', ...env }, encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`vmwu sweep ${name} failed (${r.status}):\n${r.stderr}`);
  const res = spawnSync(process.execPath, [join(packageRoot, 'bin', 'vmwu.js'), 'results', name, '--json'], { encoding: 'utf8' });
  const cached = (JSON.parse(res.stdout) as { cachedFrom: string | null }[]).filter((j) => j.cachedFrom).length;
  return { ms, vms: counted() - before, cached };
}

try {
  const values = Array.from({ length: jobs }, (_, i) => i + 1);
  const a = plan(values);
  // Keys include the plan's inputs and commands, not its name: a new experiment of the same plan hits.
  const first = sweep(a, `bench-rc-${tag}-first`);
  const again = sweep(a, `bench-rc-${tag}-again`, { VMWU_QEMU: wrapper });
  const changed = plan([...values.slice(0, -1), jobs + 1000]);
  const one = sweep(changed, `bench-rc-${tag}-one`);
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`${jobs}-job sweep of the tiny base, 2 slots`);
  console.log(`first run (every job a VM)                      ${s(first.ms)}`);
  console.log(`unchanged re-run                                ${s(again.ms)}   ${again.cached}/${jobs} cached, ${again.vms} QEMU started`);
  console.log(`one parameter value changed                     ${s(one.ms)}   ${one.cached}/${jobs} cached, ${jobs - one.cached} run`);
  console.log(`unchanged re-run / first run                    ${(again.ms / first.ms).toFixed(3)}×`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
