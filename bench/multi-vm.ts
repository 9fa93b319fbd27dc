/**
 * Multi-VM MPI jobs (issue 24, `vmwu run --nodes N`).
 *
 * 1. Latency and bandwidth between two VMs: an MPI ping-pong (test/fixtures/mpi/pingpong.c:
 *    8 B × 1000 round trips for latency, 1 MiB × 50 for bandwidth), built on the host with
 *    mpicc.openmpi -O2 and run as `mpirun -np 2 --hostfile $VMWU_HOSTFILE` in a 2-VM job of
 *    a unit that installs Debian's openmpi-bin (as test/integration/mpi.test.ts does),
 *    against the same program natively on this host between two processes (the floor;
 *    Open MPI picks shared memory there), and natively over TCP loopback (`--mca btl
 *    tcp,self`, the transport the VMs use, shown for reference); and the same 2-VM job
 *    spread over two SSH hosts (a sweep, --executor ssh --nodes 2 --spread; needs root for
 *    the network-namespace hosts). The program times itself, so boot and set-up stay out
 *    of the figures.
 * 2. Start time of a 4-VM job against a 1-VM job: `vmwu run --nodes 4 --memory 128M
 *    --base tiny -- true` (every VM a clone of the segment template of its shape) against
 *    the same without --nodes (a clone of its own template) and with --cold (a boot).
 *    Runs alternate so machine noise hits every side alike; --no-cache everywhere, so the
 *    result cache never answers.
 *
 *   node dist/bench/multi-vm.js [runs]     (default 5)
 *
 * Uses the store at VMWU_HOME (default .vmwu-bench, as scripts/bench.sh): builds the tiny
 * and Debian bases and the unit mpi-bench there when missing (the Debian mirror must be
 * reachable). Part 1 needs mpicc.openmpi and mpirun.openmpi on the host (apt-get install
 * openmpi-bin libopenmpi-dev); without them only part 2 runs.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { packageRoot } from '../src/paths.js';
import { fmt, median } from './stats.js';
import { netnsHostsUnavailable, startNetnsHosts } from '../test/support/netns-hosts.js';

// Every `vmwu run` here is timed work: the result cache must not answer it.
process.env.VMWU_RESULT_CACHE ??= 'off';
process.env.VMWU_HOME ??= join(packageRoot, '.vmwu-bench');

const runs = Number(process.argv[2] ?? 5);
const cli = join(packageRoot, 'bin', 'vmwu.js');
const UNIT = 'mpi-bench';
/** The ping-pong's sizes and round trips: small (latency), then large (bandwidth). */
const SMALL = 8;
const SMALL_REPS = 1000;
const LARGE = 1 << 20;
const LARGE_REPS = 50;
const PP_ARGS = [SMALL, SMALL_REPS, LARGE, LARGE_REPS].map(String);

interface Phases { prepare: number; boot: number; restore: number; stageIn: number; exec: number; stageOut: number; shutdown: number; collect: number }
interface RunJson { status: string; outDir: string; phases: Phases; totalMs: number; start?: { mode: string }; vms?: { phases: Phases }[] }

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { ms: number; code: number | null; stdout: string; stderr: string } {
  const t = performance.now();
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 30 * 60_000, maxBuffer: 64 * 1024 ** 2 });
  return { ms: performance.now() - t, code: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

function vmwu(args: string[]): { ms: number; stdout: string; stderr: string } {
  const r = sh(process.execPath, [cli, ...args]);
  if (r.code !== 0) throw new Error(`vmwu ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr}`);
  return r;
}

function vmRun(args: string[]): RunJson & { wallMs: number } {
  const r = vmwu(['run', '--no-cache', '--json', ...args]);
  let j: RunJson;
  try {
    j = JSON.parse(r.stdout) as RunJson;
  } catch {
    throw new Error(`vmwu run ${args.join(' ')}: no JSON result on its stdout:\n${r.stdout}\n${r.stderr}`);
  }
  if (j.status !== 'succeeded') throw new Error(`vmwu run ${args.join(' ')}: ${j.status}`);
  return { ...j, wallMs: r.ms };
}

function ensureBase(show: string, build: string): void {
  if (sh(process.execPath, [cli, 'base', 'show', show]).code === 0) return;
  process.stderr.write(`building the ${build} base…\n`);
  vmwu(['base', 'build', build]);
}

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
const range = (xs: number[], digits: number) => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;

// ── 1. ping-pong latency and bandwidth ─────────────────────────────────────────────

/** One way of running the two ranks, with what each of its runs measured. */
interface PingPongRow {
  label: string;
  /** Half a round trip of SMALL bytes, µs, one entry per run. */
  latencyUs: number[];
  /** LARGE-byte round trips: bytes moved / time, MB/s (10^6 B), one entry per run. */
  bandwidthMBs: number[];
  /** The floor the other rows' ratios are taken against. */
  floor?: boolean;
}

/** The program's output (rank 0's): `hosts A B`, `latency … us=X`, `bandwidth … MBps=Y`. */
function parsePingPong(text: string, where: string): { hosts: string[]; latencyUs: number; bandwidthMBs: number } {
  const hosts = /^hosts (\S+) (\S+)$/m.exec(text);
  const lat = /^latency bytes=\d+ reps=\d+ us=([\d.]+)$/m.exec(text);
  const bw = /^bandwidth bytes=\d+ reps=\d+ MBps=([\d.]+)$/m.exec(text);
  if (!hosts || !lat || !bw) throw new Error(`${where}: no ping-pong figures in its output:\n${text}`);
  return { hosts: [hosts[1]!, hosts[2]!], latencyUs: Number(lat[1]), bandwidthMBs: Number(bw[1]) };
}

const ompiRoot = { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };

function nativePingPong(prog: string, mpirunArgs: string[]): { latencyUs: number; bandwidthMBs: number } {
  const r = sh('mpirun.openmpi', ['--oversubscribe', ...mpirunArgs, '-np', '2', prog, ...PP_ARGS], ompiRoot);
  if (r.code !== 0) throw new Error(`native mpirun ${mpirunArgs.join(' ')} failed (exit ${r.code}):\n${r.stderr}`);
  return parsePingPong(r.stdout, 'native ping-pong');
}

function vmPingPong(): { latencyUs: number; bandwidthMBs: number; wallMs: number } {
  const j = vmRun(['--nodes', '2', '--memory', '256M', '--timeout', '10m', UNIT]);
  const p = parsePingPong(readFileSync(join(j.outDir, 'stdout'), 'utf8'), `the 2-VM job (out dir ${j.outDir})`);
  if (p.hosts[0] === p.hosts[1]) throw new Error(`the two ranks ran on the same VM (${p.hosts[0]}): not a measure between two VMs`);
  return { ...p, wallMs: j.wallMs };
}

/**
 * The same ping-pong with the two ranks' VMs on two SSH hosts (network-namespace
 * hosts with their own sshd and store, as bench/ssh.ts makes them): a sweep of one
 * job with `--executor ssh --nodes 2 --spread`, run `runs` times. Frames go from
 * each VM through its host's vmwu, sshd and the SSH connection to the submitter's
 * hub and back. Skipped (said so) where such hosts cannot be made (not root).
 */
async function addAcrossSshHostsRow(rows: PingPongRow[], work: string): Promise<void> {
  const why = netnsHostsUnavailable();
  if (why) {
    console.log(`(across two SSH hosts skipped: ${why})`);
    return;
  }
  const pool = await startNetnsHosts(join(work, 'pool'), 2);
  const tag = work.slice(-6).replace(/[^A-Za-z0-9]/g, 'x');
  const names = pool.hosts.map((h) => `bench-mvm-${h.name}-${tag}`);
  const row: PingPongRow = { label: 'across two SSH hosts (sweep --nodes 2 --spread)', latencyUs: [], bandwidthMBs: [] };
  const plan = join(work, 'pingpong.pln');
  writeFileSync(plan, ['parameter i integer range from 1 to 1', 'task main',
    `    shexec "mpirun -np 2 --hostfile $$VMWU_HOSTFILE /opt/mpi/pingpong ${PP_ARGS.join(' ')} > out.txt"`, '    copy node:out.txt root:out.txt', 'endtask', ''].join('\n'));
  try {
    for (const [i, h] of pool.hosts.entries()) {
      vmwu(['hosts', 'add', `root@${h.address}`, '--name', names[i]!, '--key', pool.key, '--store', h.store, '--label', `bench=${tag}`,
        '--vmwu', `VMWU_ACCEL=tcg ${process.execPath} ${cli}`]);
    }
    for (let i = 0; i < runs; i++) {
      const name = `bench-mvm-${tag}-${i}`;
      vmwu(['sweep', plan, '--unit', UNIT, '--executor', 'ssh', '--hosts', `bench=${tag}`, '--name', name, '--retries', '0', '--memory', '256M', '--timeout', '10m', '--nodes', '2', '--spread']);
      const [job] = JSON.parse(vmwu(['results', name, '--json']).stdout) as { outputs: string[] }[];
      const p = parsePingPong(readFileSync(job!.outputs[0]!, 'utf8'), `the 2-VM job on two hosts (${name})`);
      row.latencyUs.push(p.latencyUs);
      row.bandwidthMBs.push(p.bandwidthMBs);
    }
    rows.push(row);
  } finally {
    for (const n of names) spawnSync(process.execPath, [cli, 'hosts', 'rm', n], { stdio: 'ignore' });
    await pool.stop();
  }
}

function printPingPong(rows: PingPongRow[]): void {
  const floor = rows.find((r) => r.floor)!;
  const [fl, fb] = [median(floor.latencyUs), median(floor.bandwidthMBs)];
  console.log(`MPI ping-pong, rank 0 ↔ rank 1: latency = half a round trip of ${SMALL} B (${SMALL_REPS} round trips), bandwidth = ${LARGE / 1024 ** 2} MiB messages (${LARGE_REPS} round trips); medians of ${runs} runs`);
  console.log(`${''.padEnd(46)}${'latency'.padStart(12)}${'bandwidth'.padStart(15)}   ${'VM/native: latency'.padStart(18)}  bandwidth`);
  for (const r of rows) {
    const [l, b] = [median(r.latencyUs), median(r.bandwidthMBs)];
    const ratios = r.floor ? '   (the floor)' : `${(l / fl).toFixed(1).padStart(18)}×  ${(b / fb).toFixed(4)}×`;
    console.log(`${r.label.padEnd(46)}${`${l.toFixed(2)} µs`.padStart(12)}${`${b.toFixed(1)} MB/s`.padStart(15)}   ${ratios}`);
    console.log(`${''.padEnd(46)}${`range ${range(r.latencyUs, 2)} µs, ${range(r.bandwidthMBs, 1)} MB/s`.padStart(27)}`);
  }
}

async function pingPongPart(work: string): Promise<void> {
  const missing = ['mpicc.openmpi', 'mpirun.openmpi'].filter((t) => !has(t));
  if (missing.length) {
    console.log(`(MPI ping-pong skipped: missing ${missing.join(', ')} on the host: apt-get install openmpi-bin libopenmpi-dev)`);
    return;
  }
  ensureBase('debian:bookworm', 'debian');
  const unit = join(work, UNIT);
  mkdirSync(join(unit, 'app'), { recursive: true });
  const prog = join(unit, 'app', 'pingpong');
  const cc = sh('mpicc.openmpi', ['-O2', '-o', prog, join(packageRoot, 'test', 'fixtures', 'mpi', 'pingpong.c')]);
  if (cc.code !== 0) throw new Error(`mpicc.openmpi failed:\n${cc.stderr}`);
  writeFileSync(join(unit, 'vmwu.yaml'), [
    `name: ${UNIT}`, 'version: 1.0.0', 'base: debian:bookworm', 'packages: [openmpi-bin]',
    'files:', '  - {from: ./app, to: /opt/mpi}',
    `run: [sh, -c, 'mpirun -np 2 --hostfile "$VMWU_HOSTFILE" /opt/mpi/pingpong ${PP_ARGS.join(' ')}']`, '',
  ].join('\n'));
  process.stderr.write(`building the unit ${UNIT} (cached when built before)…\n`);
  vmwu(['build', unit, '-q']);

  const shm: PingPongRow = { label: 'native, 2 processes (Open MPI shared memory)', latencyUs: [], bandwidthMBs: [], floor: true };
  const tcp: PingPongRow = { label: 'native, 2 processes, TCP loopback', latencyUs: [], bandwidthMBs: [] };
  const vm: PingPongRow = { label: 'vmwu run --nodes 2, one rank per VM', latencyUs: [], bandwidthMBs: [] };
  const wall: number[] = [];
  for (let i = 0; i < runs; i++) {
    for (const [row, args] of [[shm, []], [tcp, ['--mca', 'btl', 'tcp,self']]] as const) {
      const n = nativePingPong(prog, [...args]);
      row.latencyUs.push(n.latencyUs);
      row.bandwidthMBs.push(n.bandwidthMBs);
    }
    const v = vmPingPong();
    vm.latencyUs.push(v.latencyUs);
    vm.bandwidthMBs.push(v.bandwidthMBs);
    wall.push(v.wallMs);
  }
  const rows = [shm, tcp, vm];
  await addAcrossSshHostsRow(rows, work);
  printPingPong(rows);
  console.log(`(each 2-VM job, vmwu run --nodes 2 --memory 256M ${UNIT}, took ${fmt(median(wall)).trim()} end to end, median)`);
}

// ── 2. start time: 4 VMs against 1 ──────────────────────────────────────────────────

function startPart(): void {
  ensureBase('tiny', 'tiny');
  const variants = [
    { label: 'vmwu run -- true (1 VM)', args: [] as string[] },
    { label: 'vmwu run --cold -- true (1 VM)', args: ['--cold'] },
    { label: 'vmwu run --nodes 4 -- true (4 VMs)', args: ['--nodes', '4'] },
  ].map((v) => ({ ...v, results: [] as (RunJson & { wallMs: number })[] }));
  const once = (args: string[]) => vmRun(['--memory', '128M', '--base', 'tiny', ...args, '--', 'true']);
  // The first run of each shape is not timed (the 1-VM one saves its template).
  for (const v of variants) once(v.args);
  for (let i = 0; i < runs; i++) for (const v of variants) v.results.push(once(v.args));

  const wall = variants.map((v) => median(v.results.map((r) => r.wallMs)));
  const [one, cold, four] = wall as [number, number, number];
  console.log(`\nStart time, --memory 128M --base tiny --no-cache, wall time of the CLI; medians of ${runs} alternating runs`);
  for (const [k, v] of variants.entries()) {
    const starts = [...new Set(v.results.map((r) => r.start?.mode ?? '?'))].join('/');
    console.log(`${v.label.padEnd(38)}${fmt(wall[k]!)}  (${range(v.results.map((r) => r.wallMs), 0)} ms; ${starts})`);
  }
  console.log(`4 VMs / 1 VM                          ${(four / one).toFixed(2)}×  (+${(four - one).toFixed(0)} ms)`);
  console.log(`4 VMs / 1 VM --cold                   ${(four / cold).toFixed(2)}×  (+${(four - cold).toFixed(0)} ms)`);
  console.log('phases (medians, ms; of VM 0 for the 4-VM job):');
  const keys: (keyof Phases)[] = ['prepare', 'boot', 'restore', 'stageIn', 'exec', 'stageOut', 'shutdown', 'collect'];
  for (const v of variants) {
    const p = (k: keyof Phases) => median(v.results.map((r) => r.phases[k]));
    const line = keys.filter((k) => k !== 'boot' && k !== 'restore' ? true : p(k) > 0).map((k) => `${k} ${p(k).toFixed(0)}`).join(' · ');
    console.log(`  ${v.label.padEnd(36)}${line}`);
    if (v.results[0]?.vms) {
      const slowest = (k: keyof Phases) => median(v.results.map((r) => Math.max(...r.vms!.map((m) => m.phases[k]))));
      console.log(`  ${''.padEnd(36)}slowest of the 4 VMs: prepare ${slowest('prepare').toFixed(0)} · boot ${slowest('boot').toFixed(0)} · stageIn ${slowest('stageIn').toFixed(0)}`);
    }
  }
}

const work = mkdtempSync(join(tmpdir(), 'vmwu-bench-multi-vm-'));
try {
  process.stderr.write(`store: ${process.env.VMWU_HOME}\n`);
  await pingPongPart(work);
  startPart();
} finally {
  rmSync(work, { recursive: true, force: true });
}
