/**
 * Sweep throughput (issue 4): M trivial jobs with N slots through `vmwu sweep`
 * against GNU `parallel -j N` running the bare QEMU command for the same guest
 * (disks prepared beforehand, untimed). Also: planning time for 10,000 jobs.
 *
 *   node dist/bench/sweep.js [jobs] [slots]     (VMWU_HOME must hold the tiny base)
 *
 * Rows: bare QEMU under GNU parallel (the floor), --cold, fast start without a
 * warm pool (VMWU_WARM=0), and with one (the default, issue 25).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PortName } from '../guest/protocol.js';
import { instancePaths, makeInstanceDirs, runLogPaths } from '../src/run/instance.js';
import { prepareInstance } from '../src/run/prepare.js';
import { requireBase } from '../src/store/bases.js';
import { openStore } from '../src/store/store.js';
import { hostTscKhz, qemuBinary } from '../src/vm/host.js';
import { packageRoot } from '../src/paths.js';

const jobs = Number(process.argv[2] ?? 16);
const slots = Number(process.argv[3] ?? 2);
const store = openStore();
const base = requireBase(store.db, 'tiny');
const work = mkdtempSync(join(tmpdir(), 'vmwu-bench-sweep-'));
const vmwu = join(packageRoot, 'bin', 'vmwu.js');

try {
  // The floor: one shell script per job holding the bare QEMU command line.
  const scripts: string[] = [];
  for (let i = 0; i < jobs; i++) {
    const dir = join(work, `bare-${i}`);
    const p = instancePaths(dir, runLogPaths(dir), `bare${i}`);
    makeInstanceDirs(p);
    const disks = await prepareInstance({ root: store.blobs.path(base.root), virtualSize: base.virtualSize }, { id: `bare${i}`, argv: ['true'], maxOutputBytes: 2 * 1024 ** 3 }, p);
    const args = [
      qemuBinary, '-machine', 'microvm', '-accel', 'tcg', '-m', '256M', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-kernel', store.blobs.path(base.kernel!), '-initrd', store.blobs.path(base.initrd!), '-append', `'${base.cmdline} tsc_early_khz=${hostTscKhz()}'`,
      ...disks.flatMap((d) => ['-drive', `id=${d.id},file=${d.path},format=${d.format},if=none,${d.readOnly ? 'readonly=on' : 'cache=unsafe'}`, '-device', `virtio-blk-device,drive=${d.id},serial=${d.serial}`]),
      '-serial', `file:${p.logs.console}`, '-device', 'virtio-serial-device',
      ...Object.values(PortName).flatMap((name, k) => ['-chardev', `file,id=p${k},path=${join(dir, `${name}.log`)}`, '-device', `virtserialport,chardev=p${k},name=${name}`]),
    ];
    const s = join(work, `bare-${i}.sh`);
    writeFileSync(s, args.join(' ') + '\n');
    scripts.push(s);
  }
  let t = performance.now();
  const par = spawnSync('parallel', ['-j', String(slots), 'sh', ':::', ...scripts], { stdio: 'ignore' });
  const floorMs = performance.now() - t;
  if (par.status !== 0) throw new Error(`parallel failed (${par.status})`);

  const plan = join(work, 'bench.pln');
  writeFileSync(plan, `parameter i integer range from 1 to ${jobs} step 1\ntask main\n    exec true\nendtask\n`);
  const sweep = (extra: string[], env: NodeJS.ProcessEnv = {}) => {
    const t0 = performance.now();
    const sw = spawnSync(process.execPath, [vmwu, 'sweep', plan, '--base', 'tiny', '--slots', String(slots), '--retries', '0', '--no-cache', '--name', `bench-${Date.now()}`, ...extra],
      { encoding: 'utf8', env: { ...process.env, VMWU_ACCEL: 'tcg', ...env } });
    if (sw.status !== 0) throw new Error(`vmwu sweep failed: ${sw.stderr.slice(-2000)}`);
    return performance.now() - t0;
  };
  // Fast start (the default) from a template made beforehand, untimed, as a first job would make it.
  spawnSync(process.execPath, [vmwu, 'warm', '--base', 'tiny'], { stdio: 'ignore' });
  const warmMs = sweep([]);
  const vmwuMs = sweep([], { VMWU_WARM: '0' });
  const coldMs = sweep(['--cold']);

  const big = join(work, 'big.pln');
  writeFileSync(big, 'parameter a integer range from 1 to 100 step 1\nparameter b integer range from 1 to 100 step 1\ntask main\n    exec echo ${a} ${b}\nendtask\n');
  t = performance.now();
  const dry = spawnSync(process.execPath, [vmwu, 'sweep', big, '--base', 'tiny', '--dry-run', '--json'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const planMs = performance.now() - t;
  if (dry.status !== 0) throw new Error('dry run failed');
  const count = (JSON.parse(dry.stdout) as unknown[]).length;

  const tf = jobs / (floorMs / 1000);
  const tv = jobs / (vmwuMs / 1000);
  const tc = jobs / (coldMs / 1000);
  const tw = jobs / (warmMs / 1000);
  console.log(`jobs: ${jobs} trivial (exec true), slots: ${slots}, accel tcg`);
  console.log(`GNU parallel -j ${slots} bare QEMU (cold) : ${(floorMs / 1000).toFixed(1)} s  → ${tf.toFixed(3)} jobs/s`);
  console.log(`vmwu sweep --slots ${slots} --cold        : ${(coldMs / 1000).toFixed(1)} s  → ${tc.toFixed(3)} jobs/s  (ratio ${(tc / tf).toFixed(3)}, target >= 0.90)`);
  console.log(`vmwu sweep --slots ${slots} (fast start, VMWU_WARM=0) : ${(vmwuMs / 1000).toFixed(1)} s  → ${tv.toFixed(3)} jobs/s  (ratio ${(tv / tf).toFixed(3)}, target >= 2.5)`);
  console.log(`vmwu sweep --slots ${slots} (warm pool, default)  : ${(warmMs / 1000).toFixed(1)} s  → ${tw.toFixed(3)} jobs/s  (ratio ${(tw / tf).toFixed(3)}, target >= 8)`);
  console.log(`planning ${count} jobs (vmwu sweep --dry-run --json, whole CLI): ${planMs.toFixed(0)} ms`);
} finally {
  store.close();
  rmSync(work, { recursive: true, force: true });
}
