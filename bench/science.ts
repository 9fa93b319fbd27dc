/**
 * Application overhead (issue 13): the two science examples, HMMER hmmsearch and a
 * GROMACS water box, timed inside a unit against the same command run natively on
 * this host. The VM side is split into its phases (prepare, boot or restore from the
 * template, stage in, the application, stage out), so the cost of the guest CPU
 * (TCG here) is apart from the cost of getting a VM to the application.
 *
 *   node dist/bench/science.js [runs] [gromacs-steps]     (default 3 runs, 500 steps)
 *
 * Uses the store at VMWU_HOME: builds the Debian base, protdb:1 and both units there
 * when missing (the mirror must be reachable). Native sides need hmmsearch and gmx on
 * the host; without them only the VM figures are printed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot } from '../src/paths.js';
import { median } from './stats.js';

// Every `vmwu run` here is timed work: the result cache must not answer it (the rows that measure the cache turn it on).
process.env.VMWU_RESULT_CACHE ??= 'off';

const runs = Number(process.argv[2] ?? 3);
const nsteps = Number(process.argv[3] ?? 500);
const vmwuBin = join(packageRoot, 'bin', 'vmwu.js');
const examples = join(packageRoot, 'examples');
const home = process.env.VMWU_HOME ?? join(packageRoot, '.vmwu-bench');

interface Phases { prepare: number; boot: number; restore: number; stageIn: number; exec: number; stageOut: number; shutdown: number; collect: number }
interface RunJson { status: string; outDir: string; phases: Phases; totalMs: number; start: { mode: string } }

function sh(cmd: string, args: string[], o: { cwd?: string } = {}): Promise<{ ms: number; code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const t = performance.now();
    const c = spawn(cmd, args, { cwd: o.cwd, env: { ...process.env, VMWU_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    c.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    c.on('close', (code) => resolve({ ms: performance.now() - t, code, stdout, stderr }));
  });
}

async function vmwu(args: string[]): Promise<{ stdout: string; ms: number }> {
  const r = await sh(process.execPath, [vmwuBin, ...args]);
  if (r.code !== 0) throw new Error(`vmwu ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr}`);
  return r;
}

async function vmRun(args: string[]): Promise<RunJson & { wallMs: number }> {
  const r = await vmwu(['run', ...args, '--json']);
  const j = JSON.parse(r.stdout) as RunJson;
  if (j.status !== 'succeeded') throw new Error(`vmwu run ${args.join(' ')}: ${j.status}`);
  return { ...j, wallMs: r.ms };
}

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
/** gmx refuses to start on a CPU without what it was built for (RDTSCP here), so try it. */
const nativeGmx = spawnSync('gmx', ['-quiet', '--version'], { stdio: 'ignore' }).status === 0;

/** mdrun's own wall time from its log ("Time: core wall %"): the MD alone, without grompp and the rest. */
function mdrunWallMs(log: string): number {
  const m = /^\s*Time:\s+[\d.]+\s+([\d.]+)/m.exec(readFileSync(log, 'utf8'));
  return m ? Number(m[1]) * 1000 : Number.NaN;
}

interface App {
  name: string;
  vmArgs: string[];
  native?: (dir: string) => Promise<{ ms: number; code: number | null; stderr: string }>;
  /** A figure the application reports itself, in the VM (from the run's out dir) and natively (from the native dir). */
  inner?: { label: string; vm: (outDir: string) => number; native: (dir: string) => number };
}

async function setup(): Promise<void> {
  process.stderr.write(`store: ${home}\n`);
  if ((await sh(process.execPath, [vmwuBin, 'base', 'show', 'debian:bookworm'])).code !== 0) {
    process.stderr.write('building the Debian base…\n');
    await vmwu(['base', 'build', 'debian']);
  }
  const db = await sh('sh', [join(examples, 'hmmer', 'get-db.sh'), join(home, 'cache', 'protdb')]);
  if (db.code !== 0) throw new Error(`examples/hmmer/get-db.sh failed:\n${db.stderr}`);
  for (const unit of ['hmmer', 'gromacs']) {
    process.stderr.write(`building examples/${unit} (cached when built before)…\n`);
    await vmwu(['build', join(examples, unit), '-q']);
  }
}

const s = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a');

async function measure(app: App): Promise<void> {
  // The first run of a shape boots and saves its template: not timed.
  await vmRun(app.vmArgs);
  const vm: (RunJson & { wallMs: number })[] = [];
  const native: number[] = [];
  const innerVm: number[] = [];
  const innerNative: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await vmRun(app.vmArgs);
    vm.push(r);
    if (app.inner) innerVm.push(app.inner.vm(r.outDir));
    if (app.native) {
      const dir = mkdtempSync(join(tmpdir(), `vmwu-bench-${app.name}-`));
      try {
        const n = await app.native(dir);
        if (n.code !== 0) throw new Error(`native ${app.name} failed:\n${n.stderr}`);
        native.push(n.ms);
        if (app.inner) innerNative.push(app.inner.native(dir));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  const cold = await vmRun([...app.vmArgs, '--cold']);
  const p = (k: keyof Phases) => median(vm.map((r) => r.phases[k]));
  const exec = p('exec');
  const nat = native.length ? median(native) : Number.NaN;
  const staging = p('stageIn') + p('stageOut') + p('collect');
  const total = median(vm.map((r) => r.wallMs));
  console.log(`\n${app.name}: vmwu run ${app.vmArgs.join(' ')}   (median of ${runs}; native: the same script on the host)`);
  console.log(`  native on the host                 ${s(nat).padStart(10)}`);
  console.log(`  in the VM: the application (exec)  ${s(exec).padStart(10)}   ${(exec / nat).toFixed(1)}× native  (overhead ${(((exec - nat) / nat) * 100).toFixed(0)} %)`);
  if (app.inner) {
    const iv = median(innerVm);
    const inn = innerNative.length ? median(innerNative) : Number.NaN;
    console.log(`    ${app.inner.label.padEnd(33)}${s(iv).padStart(10)}   against ${s(inn)} native: ${(iv / inn).toFixed(1)}×`);
  }
  console.log(`  in the VM: prepare                 ${s(p('prepare')).padStart(10)}`);
  console.log(`  in the VM: restore from template   ${s(p('restore')).padStart(10)}   (a cold boot instead: ${s(cold.phases.boot)})`);
  console.log(`  in the VM: stage in + out, collect ${s(staging).padStart(10)}`);
  console.log(`  vmwu run, whole (wall)             ${s(total).padStart(10)}   ${(total / nat).toFixed(1)}× native; the VM's own phases ${s(total - exec)}`);
}

try {
  await setup();
  const hmm = 'Pkinase';
  const hmmer: App = {
    name: 'hmmer', vmArgs: ['hmmer', '--param', `hmm=${hmm}`],
    native: has('hmmsearch') ? (dir) => sh('sh', [join(examples, 'hmmer', 'native.sh'), hmm, join(home, 'cache', 'protdb', 'DB.fasta'), dir]) : undefined,
  };
  const gromacs: App = {
    name: 'gromacs', vmArgs: ['gromacs', '--param', 'temp=300', '--param', `nsteps=${nsteps}`],
    native: nativeGmx ? (dir) => sh('sh', [join(examples, 'gromacs', 'app', 'run.sh'), '300', String(nsteps)], { cwd: dir }) : undefined,
    inner: { label: `mdrun alone (${nsteps} steps, its log)`, vm: (out) => mdrunWallMs(join(out, 'work', 'nvt.log')), native: (dir) => mdrunWallMs(join(dir, 'nvt.log')) },
  };
  console.log(`science overhead: ${runs} runs each, GROMACS ${nsteps} NVT steps; ${new Date().toISOString().slice(0, 10)}`);
  await measure(hmmer);
  await measure(gromacs);
  console.log('\nThe seeds, under KVM (hardware virtualisation): VAA measured 0-1.5 % application overhead');
  console.log('(HMMER, GROMACS); GridWay with VMs 13-20 %. Here the guest CPU is emulated (TCG, no KVM),');
  console.log('so the application ratio measures QEMU\'s instruction translation, not vmwu.');
} catch (e) {
  console.error(String((e as Error).message ?? e));
  process.exitCode = 1;
}
