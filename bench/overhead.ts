/**
 * Orchestration overhead: `vmwu run --base tiny -- true` against the bare
 * qemu-system-x86_64 command line booting the same kernel and initrd on the same
 * disks, with the guest doing the same work (agent, input unpack, output tar,
 * power-off). Runs alternate so machine noise hits both sides alike.
 *
 *   node dist/bench/overhead.js [runs]      (VMWU_HOME must hold the tiny base)
 */
import { cpus } from 'node:os';
import { join } from 'node:path';
import { requireBase } from '../src/store/bases.js';
import { openStore } from '../src/store/store.js';
import { qemuVersion } from '../src/vm/host.js';
import { packageRoot } from '../src/paths.js';
import { bareRun, time } from './bare-qemu.js';
import { fmt, median } from './stats.js';

// Every `vmwu run` here is timed work: the result cache must not answer it (the rows that measure the cache turn it on).
process.env.VMWU_RESULT_CACHE ??= 'off';

const runs = Number(process.argv[2] ?? 7);

const store = openStore();
const base = requireBase(store.db, 'tiny');

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
  bare.push(await bareRun(store, base, i));
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
