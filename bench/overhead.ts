/**
 * Orchestration overhead: `vmwu run --base tiny -- true` against the bare
 * qemu-system-x86_64 command line booting the same kernel and initrd on the same
 * disks, with the guest doing the same work (agent, input unpack, output tar,
 * power-off). Runs alternate so machine noise hits both sides alike.
 *
 *   node dist/bench/overhead.js [runs]      (VMWU_HOME must hold the tiny base)
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PortName } from '../guest/protocol.js';
import { instancePaths, makeInstanceDirs, runLogPaths } from '../src/run/instance.js';
import { prepareInstance } from '../src/run/prepare.js';
import { requireBase } from '../src/store/bases.js';
import { openStore } from '../src/store/store.js';
import { hostTscKhz, qemuBinary, qemuVersion } from '../src/vm/host.js';
import { packageRoot } from '../src/paths.js';
import { fmt, median } from './stats.js';

// Every `vmwu run` here is timed work: the result cache must not answer it (the rows that measure the cache turn it on).
process.env.VMWU_RESULT_CACHE ??= 'off';

const runs = Number(process.argv[2] ?? 7);

function time(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<{ ms: number; stdout: string; code: number | null }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const c = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'ignore'] });
    const timer = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('exit', () => clearTimeout(timer));
    let stdout = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    c.on('close', (code) => resolve({ ms: performance.now() - t, stdout, code }));
  });
}

const store = openStore();
const base = requireBase(store.db, 'tiny');

async function bareRun(i: number): Promise<number> {
  const dir = join(store.paths.tmp, `bench-bare-${i}`);
  const p = instancePaths(dir, runLogPaths(dir), `bare${i}`);
  makeInstanceDirs(p);
  const disks = await prepareInstance({ root: store.blobs.path(base.root), virtualSize: base.virtualSize }, { id: `bare${i}`, argv: ['true'], maxOutputBytes: 2 * 1024 ** 3 }, p);
  const args = [
    '-machine', 'microvm', '-accel', 'tcg', '-m', '256M', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-kernel', store.blobs.path(base.kernel!), '-initrd', store.blobs.path(base.initrd!),
    '-append', `${base.cmdline} tsc_early_khz=${hostTscKhz()}`,
    ...disks.flatMap((d) => ['-drive', `id=${d.id},file=${d.path},format=${d.format},if=none,${d.readOnly ? 'readonly=on' : 'cache=unsafe'}`,
      '-device', `virtio-blk-device,drive=${d.id},serial=${d.serial}`]),
    '-serial', `file:${p.logs.console}`,
    '-device', 'virtio-serial-device',
    // File chardevs: always "connected", so the guest never blocks on a port nobody reads.
    ...Object.values(PortName).flatMap((name, k) => ['-chardev', `file,id=p${k},path=${join(dir, `${name}.log`)}`, '-device', `virtserialport,chardev=p${k},name=${name}`]),
  ];
  const r = await time(qemuBinary, args);
  if (r.code !== 0) throw new Error(`bare QEMU exited ${r.code}; console in ${p.logs.console}`);
  rmSync(dir, { recursive: true, force: true });
  return r.ms;
}

async function vmwuRun(): Promise<{ ms: number; phases: Record<string, number> }> {
  const r = await time(process.execPath, [join(packageRoot, 'bin', 'vmwu.js'), 'run', '--base', 'tiny', '--cold', '--json', '--', 'true'], { ...process.env, VMWU_ACCEL: 'tcg' });
  const j = JSON.parse(r.stdout) as { status: string; phases: Record<string, number> };
  if (j.status !== 'succeeded') throw new Error(`vmwu run: ${r.stdout}`);
  return { ms: r.ms, phases: j.phases };
}

const bare: number[] = [];
const vm: number[] = [];
const phases: Record<string, number[]> = {};
await vmwuRun(); // warm the page cache and the accelerator verdict
for (let i = 0; i < runs; i++) {
  bare.push(await bareRun(i));
  const v = await vmwuRun();
  vm.push(v.ms);
  for (const [k, x] of Object.entries(v.phases)) (phases[k] ??= []).push(x);
  process.stderr.write(`run ${i + 1}/${runs}: bare ${bare[i]!.toFixed(0)} ms, vmwu ${v.ms.toFixed(0)} ms\n`);
}
const mb = median(bare);
const mv = median(vm);
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, QEMU ${await qemuVersion()}, accel tcg`);
console.log(`runs: ${runs} each, alternating`);
console.log(`bare qemu-system-x86_64 (floor)  median ${fmt(mb)}   min ${fmt(Math.min(...bare))}`);
console.log(`vmwu run (CLI, end to end)       median ${fmt(mv)}   min ${fmt(Math.min(...vm))}`);
console.log(`overhead ratio vmwu/bare: ${(mv / mb).toFixed(3)}  (target <= 1.10); absolute ${(mv - mb).toFixed(0)} ms`);
console.log('vmwu phase medians:');
for (const [k, xs] of Object.entries(phases)) console.log(`  ${k.padEnd(9)} ${fmt(median(xs))}`);
store.close();
