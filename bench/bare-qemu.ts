import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PortName } from '../guest/protocol.js';
import { instancePaths, makeInstanceDirs, runLogPaths } from '../src/run/instance.js';
import { prepareInstance } from '../src/run/prepare.js';
import type { Base } from '../src/store/bases.js';
import type { Store } from '../src/store/store.js';
import { hostTscKhz, qemuBinary } from '../src/vm/host.js';

/**
 * The floor the benchmarks measure vmwu against: the bare qemu-system-x86_64
 * command line booting the tiny base's kernel and initrd on the same disks,
 * the guest's agent doing the same work (`true`, output tar, power-off). The
 * disks are made untimed.
 */

/** A command's wall time, its stdout and its exit code (killed after `timeoutMs`). */
export function time(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<{ ms: number; stdout: string; code: number | null }> {
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

/** One bare boot of the tiny base running `true`; its wall time. */
export async function bareRun(store: Store, base: Base, i: number): Promise<number> {
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
