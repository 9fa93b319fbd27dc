/**
 * Stage-out destinations of all the jobs of an experiment, checked together: no
 * two jobs may write the same path, nor one inside the other's. Staging out a
 * directory replaces what is at its destination, so `root:out` of one job would
 * delete `root:out/x` of another (issue 11, defect 10). One job may nest its own
 * destinations: it owns that tree. Pure; the caller formats the error.
 */
export interface Destination {
  /** Normalised, relative to the results dir (as `confineDestination` returns it). */
  path: string;
  job: number;
  /** The copy's command number in the task, to name its plan line. */
  command: number;
}

/** Sorts path by path component: `a/b` right after `a`, before `a-1` (NUL is below every character a path can hold). */
const sortKey = (p: string): string => p.replaceAll('/', '\0');

/**
 * The first pair of destinations of two different jobs where the first is the
 * second or one of its parent directories, or null. O(n log n): after sorting by
 * component, a path's ancestors are exactly the entries still on a stack of open
 * prefixes, whose depth is bounded by the path's.
 */
export function findOverlap(dests: Destination[]): [Destination, Destination] | null {
  const sorted = dests.map((d) => ({ d, key: sortKey(d.path) }))
    .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.d.job - y.d.job || x.d.command - y.d.command));
  const open: { d: Destination; key: string }[] = [];
  for (const e of sorted) {
    while (open.length) {
      const top = open[open.length - 1]!;
      if (e.key === top.key || e.key.startsWith(`${top.key}\0`)) break;
      open.pop();
    }
    const other = open.find((o) => o.d.job !== e.d.job);
    if (other) return [other.d, e.d];
    open.push(e);
  }
  return null;
}

/** Whether a and b are the same path or one lies inside the other (both normalised and relative). */
export function overlaps(a: string, b: string): boolean {
  return a === b || b.startsWith(`${a}/`) || a.startsWith(`${b}/`);
}

/** Up to two distinct jobs per path: enough to tell whether some job other than a given one is there. */
type Holders = { job: number; path: string }[];

function hold(m: Map<string, Holders>, key: string, job: number, path: string): void {
  const h = m.get(key);
  if (!h) m.set(key, [{ job, path }]);
  else if (h.length < 2 && !h.some((x) => x.job === job)) h.push({ job, path });
}

const other = (h: Holders | undefined, job: number) => h?.find((x) => x.job !== job);

/**
 * The outputs jobs have recorded in the results dir, for stage-out to check at
 * run time that it replaces or writes into no other job's output (a guard behind
 * the plan check, for experiments planned before it existed). Lookups cost the
 * depth of the path, whatever the number of jobs.
 */
export class RecordedOutputs {
  private readonly exact = new Map<string, Holders>();
  private readonly within = new Map<string, Holders>();

  add(job: number, paths: readonly string[]): void {
    for (const p of paths) {
      hold(this.exact, p, job, p);
      for (let i = p.indexOf('/'); i > 0; i = p.indexOf('/', i + 1)) hold(this.within, p.slice(0, i), job, p);
    }
  }

  /** Another job's recorded output at `dest`, around it or inside it; undefined when there is none. */
  conflict(job: number, dest: string): { job: number; path: string } | undefined {
    const at = other(this.exact.get(dest), job) ?? other(this.within.get(dest), job);
    if (at) return at;
    for (let i = dest.indexOf('/'); i > 0; i = dest.indexOf('/', i + 1)) {
      const around = other(this.exact.get(dest.slice(0, i)), job);
      if (around) return around;
    }
    return undefined;
  }
}
