/**
 * Checkpoints at memory speed (issue 25 §2): a 512 MB guest whose job filled
 * 200 MB of its RAM, checkpointed with --stop and restored, in both ways side
 * by side, alternating so machine noise hits both alike:
 *  - the stream (a job's RAM mapped from its template, privately: the earlier path),
 *  - its own RAM file (`vmwu run --checkpointable`: src/run/own-memory.ts).
 * Save is the record's saveMs (pause → state, RAM and disks fsynced);
 * restore-to-running is the restored run's prepare + restore phases. Then what
 * an own RAM file costs a job that is never checkpointed: `-- true`, prepare and whole CLI.
 *
 *   node dist/bench/checkpoints.js [reps]      (VMWU_HOME must hold the tiny base)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, startRun } from './cli-run.js';
import { median } from './stats.js';

process.env.VMWU_RESULT_CACHE = 'off';
// A warm pool service would take the plain `-- true` jobs and not the others.
process.env.VMWU_WARM = '0';
const reps = Number(process.argv[2] ?? 3);
const FILL = 200_000_000;
const job = ['--base', 'tiny', '--memory', '512M', '--', 'sh', '-c',
  `head -c ${FILL} /dev/zero | tr "\\0" x > /tmp/fill; echo filled; sleep 4; ls -l /tmp/fill | awk '{print $5}'; tail -c 3 /tmp/fill; echo`];

interface Row { save: number[]; restore: number[]; bytes: number[]; ckCli: number[] }
const row = (): Row => ({ save: [], restore: [], bytes: [], ckCli: [] });

async function once(r: Row, extra: string[]): Promise<void> {
  const run = await startRun([...extra, ...job], 'filled');
  const ck = cli(['checkpoint', run.id, '--stop', '--json']);
  const rec = JSON.parse(ck.stdout) as { id: string; saveMs: number; bytes: number; memory?: string };
  if (Boolean(rec.memory) !== extra.includes('--checkpointable')) throw new Error(`checkpoint ${rec.id}: memory ${rec.memory} with ${extra.join(' ')}`);
  await run.done;
  const res = JSON.parse(cli(['restore', rec.id, '--json']).stdout) as { status: string; phases: { prepare: number; restore: number }; outDir: string };
  const lines = readFileSync(join(res.outDir, 'stdout'), 'utf8').trim().split('\n');
  // The guest's RAM came back whole: its tmpfs file has its size and its last bytes.
  if (res.status !== 'succeeded' || lines.at(-2) !== String(FILL) || lines.at(-1) !== 'xxx') throw new Error(`the restored job did not end right: ${res.status}, ${lines.join('|')}`);
  // The finished run's checkpoints go, as `vmwu gc` would take them on a host in use: writing a
  // checkpoint into memory this VM never touched since it booted costs a fault in its hypervisor
  // per page, which made saves into a store full of old checkpoints 3–5× slower for both rows.
  cli(['gc']);
  r.save.push(rec.saveMs);
  r.restore.push(res.phases.prepare + res.phases.restore);
  r.bytes.push(rec.bytes);
  r.ckCli.push(ck.ms);
}

// The template of the 512 MB shape, made before anything is timed.
cli(['run', '--base', 'tiny', '--memory', '512M', '--', 'true']);
const stream = row();
const own = row();
for (let i = 0; i < reps; i++) {
  await once(stream, []);
  await once(own, ['--checkpointable']);
  process.stderr.write(`rep ${i + 1}/${reps}: save ${stream.save[i]} / ${own.save[i]} ms, restore ${stream.restore[i]} / ${own.restore[i]} ms (stream / own RAM file)\n`);
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const MiB = (b: number) => `${(b / 1024 ** 2).toFixed(0)} MiB`;
console.log(`checkpoint of a 512 MB guest whose job filled 200 MB of RAM, median of ${reps}:`);
console.log('                                   stream (earlier)   own RAM file   ratio   target');
const line = (what: string, a: number[], b: number[], f: (x: number) => string, target = '') =>
  console.log(`  ${what.padEnd(32)} ${f(median(a)).padStart(12)}   ${f(median(b)).padStart(12)}   ${(median(b) / median(a)).toFixed(2).padStart(5)}   ${target}`);
line('save (pause → on disk)', stream.save, own.save, s, '≤ 0.5 s');
line('restore to running', stream.restore, own.restore, s, '≤ 0.5 s');
line('vmwu checkpoint, whole CLI', stream.ckCli, own.ckCli, s);
line('checkpoint size (allocated)', stream.bytes, own.bytes, MiB);

// What the own RAM file costs a job: a copy of the template's RAM at its start.
const plain: number[][] = [[], []];
const mem: number[][] = [[], []];
for (let i = 0; i < Math.max(reps, 5); i++) {
  for (const [r, extra] of [[plain, []], [mem, ['--checkpointable']]] as const) {
    const t = cli(['run', ...extra, '--base', 'tiny', '--memory', '512M', '--json', '--', 'true']);
    r[0]!.push(t.ms);
    r[1]!.push((JSON.parse(t.stdout) as { phases: { prepare: number } }).phases.prepare);
  }
}
console.log(`a 512 MB \`-- true\` job restored from its template, median of ${plain[0]!.length}:`);
console.log('                                   RAM mapped from template   own RAM file');
console.log(`  prepare                          ${`${median(plain[1]!).toFixed(0)} ms`.padStart(12)}               ${`${median(mem[1]!).toFixed(0)} ms`.padStart(8)}`);
console.log(`  vmwu run, whole CLI              ${`${median(plain[0]!).toFixed(0)} ms`.padStart(12)}               ${`${median(mem[0]!).toFixed(0)} ms`.padStart(8)}`);
