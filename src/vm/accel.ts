import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { buildQemuArgv } from './argv.js';
import { qemuBinary, qemuIdentity } from './host.js';
import { qemuUser } from './qemu-user.js';
import { supervisedCommand } from './supervise.js';
import type { Accel } from './spec.js';

/** Which accelerator a host's VMs use: KVM only where a real probe boot shows it works, else TCG, the verdict cached per host, kernel and QEMU. */

export interface AccelVerdict {
  accel: Accel;
  reason: string;
  cached: boolean;
}

export interface ProbeKernel {
  kernel: string;
  initrd: string;
  cmdline: string;
  /** Identifies the kernel in the cache key: a verdict holds for one host, kernel and QEMU. */
  digest: string;
}

/** Where verdicts are remembered: the store's settings, or a file on a node that has no database. */
export interface VerdictCache {
  get(key: string): string | undefined;
  put(key: string, value: string): void;
}

export const PROBE_TIMEOUT_MS = Number(process.env.VMWU_ACCEL_PROBE_TIMEOUT_MS ?? 6000);

/** How a probe's reason begins, so `vmwu doctor` can explain a cached verdict (src/vm/kvm-explain.ts). */
export const PROBE_FAILED = 'KVM probe boot failed';
export const PROBE_HUNG = 'KVM probe boot hung';
export const FORCED = 'forced by VMWU_ACCEL';

/**
 * KVM is used whenever it really works. /dev/kvm existing is not enough: on some
 * hosts KVM guests hang after the kernel is decompressed, so the verdict comes from
 * a real probe boot with a short timeout, cached per host, kernel and QEMU version.
 */
export async function decideAccel(cache: VerdictCache, probe: ProbeKernel | undefined, env: NodeJS.ProcessEnv = process.env): Promise<AccelVerdict> {
  const forced = env.VMWU_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: FORCED, cached: false };
  if (!existsSync('/dev/kvm')) return { accel: 'tcg', reason: 'no /dev/kvm on this host', cached: false };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return { accel: 'tcg', reason: 'no read/write access to /dev/kvm (join the kvm group)', cached: false };
  }
  if (!probe) return { accel: 'tcg', reason: 'no base to probe KVM with yet (build one: vmwu base build tiny)', cached: false };
  const key = `accel:${hostname()}:${probe.digest}:${qemuIdentity()}`;
  const cached = cache.get(key);
  if (cached) {
    const v = JSON.parse(cached) as { accel: Accel; reason: string };
    return { ...v, cached: true };
  }
  const verdict = await probeKvm(probe);
  cache.put(key, JSON.stringify(verdict));
  return { ...verdict, cached: false };
}

async function probeKvm(probe: ProbeKernel): Promise<{ accel: Accel; reason: string }> {
  const argv = buildQemuArgv({
    name: 'accel-probe', accel: 'kvm', memoryMiB: 128, cpus: 1,
    boot: { kind: 'kernel', kernel: probe.kernel, initrd: probe.initrd, cmdline: `${probe.cmdline} vmwu.probe=1` },
    disks: [], ports: [], network: false,
  });
  const [cmd, args] = supervisedCommand([qemuBinary, ...argv], qemuUser());
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { stderr = (stderr + d).slice(-2000); });
    const timer = setTimeout(() => child.kill('SIGKILL'), PROBE_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - started;
      if (code === 0) resolve({ accel: 'kvm', reason: `KVM probe boot finished in ${ms} ms` });
      else if (signal === 'SIGKILL') resolve({ accel: 'tcg', reason: `${PROBE_HUNG} (no exit within ${PROBE_TIMEOUT_MS} ms); using TCG` });
      else resolve({ accel: 'tcg', reason: `${PROBE_FAILED} (${signal ?? `exit ${code}`}): ${stderr.trim().split('\n').pop() ?? ''}` });
    });
  });
}
