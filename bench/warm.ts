/**
 * Warm pools (issue 25): `vmwu run --base tiny -- true`, whole CLI, against the
 * floor (bare QEMU booting the same guest to do the same, bench/bare-qemu.ts):
 * restored from a template (fast start) and run in a clone kept warm by
 * `vmwu warm --keep 2`. Runs alternate so machine noise hits every row alike.
 * Then where a warm job's time goes, phase by phase, beside fast start's.
 *
 *   node dist/bench/warm.js [runs]      (VMWU_HOME must hold the tiny base)
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/paths.js';
import { requireBase } from '../src/store/bases.js';
import { openStore } from '../src/store/store.js';
import { qemuVersion } from '../src/vm/host.js';
import { bareRun, time } from './bare-qemu.js';
import { fmt, median } from './stats.js';

process.env.VMWU_RESULT_CACHE = 'off';
const runs = Number(process.argv[2] ?? 7);
const vmwu = join(packageRoot, 'bin', 'vmwu.js');
const store = openStore();
const base = requireBase(store.db, 'tiny');

interface Row { wall: number[]; phases: Record<string, number[]>; warm: number }
const row = (): Row => ({ wall: [], phases: {}, warm: 0 });

async function vmwuRun(r: Row, env: NodeJS.ProcessEnv): Promise<void> {
  const t = await time(process.execPath, [vmwu, 'run', '--base', 'tiny', '--json', '--', 'true'], { ...process.env, ...env });
  const j = JSON.parse(t.stdout) as { status: string; totalMs: number; phases: Record<string, number>; start?: { warm?: boolean } };
  if (j.status !== 'succeeded') throw new Error(`vmwu run: ${t.stdout}`);
  r.wall.push(t.ms);
  // What the job's own clock does not see: node's start, the CLI, the store opened, the request resolved, the result printed.
  (r.phases.cli ??= []).push(t.ms - j.totalMs);
  for (const [k, x] of Object.entries(j.phases)) (r.phases[k] ??= []).push(x);
  if (j.start?.warm) r.warm++;
}

const bare: number[] = [];
const fast = row();
const warm = row();
// The template first (untimed), as a first job would make it.
if (spawnSync(process.execPath, [vmwu, 'warm', '--base', 'tiny'], { stdio: 'ignore' }).status !== 0) throw new Error('vmwu warm failed');
const service = spawn(process.execPath, [vmwu, 'warm', '--base', 'tiny', '--keep', '2', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise<void>((resolve, reject) => {
  let out = '';
  service.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; if (out.includes('"ready": true')) resolve(); });
  service.on('exit', (c) => reject(new Error(`vmwu warm --keep ended (${c})`)));
});
try {
  await vmwuRun(row(), { VMWU_WARM: '0' }); // the page cache, the accelerator verdict
  for (let i = 0; i < runs; i++) {
    bare.push(await bareRun(store, base, i));
    await vmwuRun(fast, { VMWU_WARM: '0' });
    // The pool refills after each job: give it the time a user between two commands would.
    await new Promise((r) => setTimeout(r, 1500));
    await vmwuRun(warm, {});
    process.stderr.write(`run ${i + 1}/${runs}: bare ${bare[i]!.toFixed(0)} ms, fast start ${fast.wall[i]!.toFixed(0)} ms, warm ${warm.wall[i]!.toFixed(0)} ms\n`);
  }
} finally {
  service.kill('SIGINT');
  store.close();
}
const mb = median(bare);
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, QEMU ${await qemuVersion()}, accel tcg; runs: ${runs} each, alternating`);
console.log(`bare qemu-system-x86_64, same guest doing \`true\` (floor)  median ${fmt(mb)}`);
console.log(`vmwu run, fast start (VMWU_WARM=0)                      median ${fmt(median(fast.wall))}   ratio ${(median(fast.wall) / mb).toFixed(3)}`);
console.log(`vmwu run, warm pool (vmwu warm --keep 2)                median ${fmt(median(warm.wall))}   ratio ${(median(warm.wall) / mb).toFixed(3)}  (target <= 0.25; ${warm.warm}/${runs} ran warm)`);
console.log('where the time goes (medians):   fast start    warm');
for (const k of Object.keys(warm.phases)) console.log(`  ${k.padEnd(9)}                   ${fmt(median(fast.phases[k] ?? [0]))}  ${fmt(median(warm.phases[k]!))}`);
