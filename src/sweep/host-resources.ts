import { readFileSync } from 'node:fs';
import { availableParallelism, freemem } from 'node:os';

/** What this host has for instances (its cores, the memory available now), which a local sweep's capacity and a pool host's report are made from. */

export interface HostResources {
  cores: number;
  availableMemMiB: number;
}

/** MemAvailable (what can be allocated without swapping), not MemFree, which ignores reclaimable cache. */
export function hostResources(): HostResources {
  let avail = freemem() / 1024 ** 2;
  try {
    const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(readFileSync('/proc/meminfo', 'utf8'));
    if (m) avail = Number(m[1]) / 1024;
  } catch {
    // not Linux: freemem is the best there is
  }
  return { cores: availableParallelism(), availableMemMiB: avail };
}
