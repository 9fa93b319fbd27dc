import { readFileSync } from 'node:fs';

/**
 * A job's resource use, the CPU time and peak memory of its QEMU: read from /proc once the guest
 * has powered off, or taken from Slurm's accounting of a batch task.
 */

/**
 * What a job's QEMU used: CPU time (user + system) and peak resident memory.
 * `proc`: read from /proc/PID on the host that ran it, once the guest had powered
 * off and QEMU was held (`-no-shutdown`), so nothing is missed; `sacct`: Slurm's
 * accounting of the array task (TotalCPU and MaxRSS of its batch step, which holds
 * QEMU and the node-side vmwu).
 */
export interface Usage {
  cpuMs: number;
  maxRssKiB: number;
  source: 'proc' | 'sacct';
}

/** USER_HZ: the unit of /proc/PID/stat times, 100 on every Linux architecture vmwu runs on. */
const TICKS_PER_SECOND = 100;

/** Parses /proc/PID/stat (utime, stime: fields 14 and 15) and /proc/PID/status (VmHWM). Pure. */
export function parseProcUsage(stat: string, status: string): Omit<Usage, 'source'> | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const hwm = /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  if (!Number.isFinite(utime) || !Number.isFinite(stime) || !hwm) return undefined;
  return { cpuMs: Math.round(((utime + stime) * 1000) / TICKS_PER_SECOND), maxRssKiB: Number(hwm[1]) };
}

export function readProcUsage(pid: number): Usage | undefined {
  try {
    const u = parseProcUsage(readFileSync(`/proc/${pid}/stat`, 'utf8'), readFileSync(`/proc/${pid}/status`, 'utf8'));
    return u && { ...u, source: 'proc' };
  } catch {
    return undefined;
  }
}
