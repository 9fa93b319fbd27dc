/**
 * Pure parsers of what Slurm's client commands print: `squeue` lines for the
 * tasks still in the queue, and `sacct` lines for the accounting of tasks that
 * ended (their state, node, TotalCPU and MaxRSS).
 */

/** `squeue -h -r -o '%i|%T|%N'`: "123_4|RUNNING|n1" → task "123_4". */
export interface QueuedTask {
  state: string;
  node: string;
}

export function parseSqueue(text: string): Map<string, QueuedTask> {
  const out = new Map<string, QueuedTask>();
  for (const line of text.split('\n')) {
    const [id, state, node] = line.trim().split('|');
    if (!id || !state) continue;
    out.set(id, { state, node: node ?? '' });
  }
  return out;
}

/** Slurm states in which a job is over (squeue may still list it for a while). */
export const ENDED_STATES = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE', 'OUT_OF_MEMORY', 'REVOKED', 'SPECIAL_EXIT']);

/** States in which the task was lost through no fault of its job: the job goes back to pending without a failure counted. */
export const LOST_STATES = new Set(['NODE_FAIL', 'BOOT_FAIL', 'PREEMPTED', 'REQUEUED', 'REVOKED']);

/** TotalCPU / Elapsed: `[D-][HH:]MM:SS[.mmm]` → ms. */
export function parseSlurmDuration(text: string): number | undefined {
  const m = /^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!m) return undefined;
  const [, d, h, min, s, frac] = m;
  const ms = frac ? Math.round(Number(`0.${frac}`) * 1000) : 0;
  return (((Number(d ?? 0) * 24 + Number(h ?? 0)) * 60 + Number(min)) * 60 + Number(s)) * 1000 + ms;
}

/** MaxRSS: `51200K`, `1.5M`, `2G`, `0` (bytes without a unit) → KiB. */
export function parseSlurmSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMGTP]?)$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = { '': 1 / 1024, K: 1, M: 1024, G: 1024 ** 2, T: 1024 ** 3, P: 1024 ** 4 }[m[2]!.toUpperCase()]!;
  return Math.round(Number(m[1]) * unit);
}

export interface TaskAccounting {
  /** The state of the task's allocation (its first word: "CANCELLED by 0" → CANCELLED). */
  state: string;
  node: string;
  cpuMs: number | undefined;
  maxRssKiB: number | undefined;
}

/**
 * `sacct -n -P -o JobID,State,NodeList,TotalCPU,MaxRSS -j IDS`: one line for each
 * array task's allocation ("123_4") and one per step ("123_4.batch"). The state
 * comes from the allocation, the CPU time from the allocation (the sum of its
 * steps), the peak memory from the largest step.
 */
export function parseSacct(text: string): Map<string, TaskAccounting> {
  const out = new Map<string, TaskAccounting>();
  const get = (id: string) => {
    let a = out.get(id);
    if (!a) {
      a = { state: '', node: '', cpuMs: undefined, maxRssKiB: undefined };
      out.set(id, a);
    }
    return a;
  };
  for (const line of text.split('\n')) {
    const [jobId, state, node, cpu, rss] = line.trim().split('|');
    if (!jobId || !/^\d+_\d+(\.[\w-]+)?$/.test(jobId)) continue;
    const dot = jobId.indexOf('.');
    const a = get(dot < 0 ? jobId : jobId.slice(0, dot));
    const cpuMs = cpu ? parseSlurmDuration(cpu) : undefined;
    const kib = rss ? parseSlurmSize(rss) : undefined;
    if (dot < 0) {
      a.state = (state ?? '').split(' ')[0]!;
      a.node = node ?? '';
      if (cpuMs !== undefined) a.cpuMs = cpuMs;
    } else if (a.cpuMs === undefined && cpuMs !== undefined) {
      a.cpuMs = cpuMs;
    }
    if (kib !== undefined) a.maxRssKiB = Math.max(a.maxRssKiB ?? 0, kib);
  }
  return out;
}
