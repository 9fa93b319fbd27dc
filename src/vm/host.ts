import { existsSync, readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { runTool } from '../image/tool.js';

/** What a run needs to know of this host's QEMU and CPU: the binary and its version, the build identity saved states are tied to, and the TSC frequency. */

export const qemuBinary = process.env.VMWU_QEMU ?? 'qemu-system-x86_64';

/**
 * The host TSC frequency in kHz. Under TCG the guest reads the host's TSC, so this
 * is the frequency the guest kernel should assume. /proc/cpuinfo's "cpu MHz" is the
 * TSC rate on virtual hosts; on bare metal with frequency scaling it is close enough
 * for a guest that only needs to stop calibrating against an emulated PIT.
 */
export function hostTscKhz(cpuinfo: string = safeRead('/proc/cpuinfo')): number | undefined {
  const m = /^cpu MHz\s*:\s*([0-9.]+)/m.exec(cpuinfo);
  if (!m) return undefined;
  const khz = Math.round(Number(m[1]) * 1000);
  return Number.isFinite(khz) && khz > 0 ? khz : undefined;
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

let versionCache: string | undefined;
export async function qemuVersion(): Promise<string> {
  if (versionCache) return versionCache;
  const { stdout } = await runTool(qemuBinary, ['--version'], { hint: 'install QEMU (Debian package qemu-system-x86)' });
  const m = /version (\S+)/.exec(stdout);
  versionCache = m ? m[1]! : stdout.split('\n')[0]!;
  return versionCache;
}

export function onPath(cmd: string): string | undefined {
  if (cmd.includes('/')) return existsSync(cmd) ? cmd : undefined;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/**
 * Identifies the installed QEMU without running it (`--version` costs a process
 * start on every run): its path, size and modification time change on upgrade.
 */
export function qemuIdentity(): string {
  const path = onPath(qemuBinary);
  if (!path) return 'missing';
  const st = statSync(path);
  return `${path}:${st.size}:${Math.round(st.mtimeMs)}`;
}
