/**
 * Snapshots (issue 12), against today's cold path:
 *  1. `vmwu run --base tiny -- true`, end to end (the CLI's wall time), restored
 *     from a template against `--cold`. Target ≤ 0.35×.
 *  2. Checkpoint save and restore of a 512 MB guest whose job filled 200 MB of
 *     RAM. Target ≤ 1 s each (VAA: save 4.7–14.6 s, restore 1.1–5.1 s).
 *  3. Memory (PSS, summed over the QEMU processes) of 8 concurrent clones
 *     against 8 cold-booted guests.
 *
 *   node dist/bench/snapshots.js [reps]      (VMWU_HOME must hold the tiny base)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startRun } from './cli-run.js';
import { median } from './stats.js';

// Every `vmwu run` here is timed work: the result cache must not answer it (the rows that measure the cache turn it on).
process.env.VMWU_RESULT_CACHE ??= 'off';

const reps = Number(process.argv[2] ?? 5);

/** The QEMU process of a run: its `-name vmwu-<id>`. */
function qemuPid(id: string): number {
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes('qemu-system') && cmd.includes(`vmwu-${id}\0`)) return Number(p);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no QEMU for run ${id}`);
}

function pssKiB(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return Number(m![1]);
}

const fmtS = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

// 1. vmwu run -- true
cli(['warm', '--base', 'tiny']);
const fast: number[] = [];
const cold: number[] = [];
for (let i = 0; i < reps; i++) {
  fast.push(cli(['run', '--base', 'tiny', '--', 'true']).ms);
  cold.push(cli(['run', '--base', 'tiny', '--cold', '--', 'true']).ms);
}
const fastMs = median(fast);
const coldMs = median(cold);
console.log(`vmwu run --base tiny -- true, median of ${reps}:`);
console.log(`  fast start (restore)   ${fmtS(fastMs)}`);
console.log(`  cold boot (--cold)     ${fmtS(coldMs)}`);
console.log(`  ratio                  ${(fastMs / coldMs).toFixed(2)}×   (target ≤ 0.35×)`);

// 2. checkpoint of a 512 MB guest with 200 MB of its RAM filled
const saves: number[] = [];
const restores: number[] = [];
const sizes: number[] = [];
for (let i = 0; i < Math.min(reps, 3); i++) {
  const job = await startRun(['--base', 'tiny', '--memory', '512M', '--', 'sh', '-c',
    'head -c 200000000 /dev/zero | tr "\\0" x > /tmp/fill; echo filled; sleep 6; wc -c < /tmp/fill'], 'filled');
  const ck = JSON.parse(cli(['checkpoint', job.id, '--stop', '--json']).stdout) as { id: string; saveMs: number; bytes: number };
  await job.done;
  const r = JSON.parse(cli(['restore', ck.id, '--json']).stdout) as { status: string; phases: { prepare: number; restore: number }; outDir: string };
  const filled = readFileSync(join(r.outDir, 'stdout'), 'utf8').trim().split('\n').pop();
  if (r.status !== 'succeeded' || filled !== '200000000') throw new Error(`the restored job did not end right: ${r.status}, ${filled}`);
  saves.push(ck.saveMs);
  restores.push(r.phases.prepare + r.phases.restore);
  sizes.push(ck.bytes);
}
console.log(`checkpoint of a 512 MB guest, 200 MB of RAM filled, median of ${saves.length}:`);
console.log(`  save (pause → on disk)        ${fmtS(median(saves))}   (target ≤ 1 s; VAA 4.7–14.6 s)`);
console.log(`  restore (disks + load → run)  ${fmtS(median(restores))}   (target ≤ 1 s; VAA 1.1–5.1 s)`);
console.log(`  checkpoint size               ${(median(sizes) / 1024 ** 2).toFixed(0)} MiB`);

// 3. memory of 8 concurrent guests
async function pssOf8(extra: string[]): Promise<number> {
  const runs = await Promise.all(Array.from({ length: 8 }, () => startRun(['--base', 'tiny', ...extra, '--', 'sh', '-c', 'echo up; sleep 600'], 'up')));
  // Let every guest settle after its start.
  await new Promise((r) => setTimeout(r, 3000));
  const total = runs.reduce((n, r) => n + pssKiB(qemuPid(r.id)), 0);
  for (const r of runs) r.kill();
  await Promise.all(runs.map((r) => r.done));
  return total;
}
const clonePss = await pssOf8([]);
const coldPss = await pssOf8(['--cold']);
console.log('memory of 8 concurrent 256 MB guests (PSS of their QEMUs, summed):');
console.log(`  8 clones of one template      ${(clonePss / 1024).toFixed(0)} MiB`);
console.log(`  8 cold boots                  ${(coldPss / 1024).toFixed(0)} MiB`);
console.log(`  ratio                         ${(clonePss / coldPss).toFixed(2)}×`);
