import { readFileSync } from 'node:fs';

/**
 * A process's identity is its pid plus its start time (field 22 of /proc/PID/stat),
 * so a recycled pid is never mistaken for the process that once had it.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parens: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

export function processCmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** "pid:starttime" of this process, as stored in a run record's owner. */
export function selfIdentity(): string {
  return `${process.pid}:${processStartTime(process.pid) ?? '0'}`;
}

/** Whether the process named by an identity token ("pid:starttime") is still the same, living process. */
export function identityAlive(identity: string): boolean {
  const [pid, start] = identity.split(':');
  const s = processStartTime(Number(pid));
  return s !== undefined && s === start;
}
