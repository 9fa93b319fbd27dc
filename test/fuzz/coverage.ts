import { Session } from 'node:inspector';

interface ScriptCoverage {
  scriptId: string;
  url: string;
  functions: { ranges: { startOffset: number; endOffset: number; count: number }[] }[];
}

/**
 * Coverage feedback from V8 itself: precise block coverage through the inspector, taken
 * after every input (taking it also resets V8's marks). A feature is a function or a
 * block of vmwu's code or of a dependency that ran.
 *
 * V8 reports a block only where its count differs from the enclosing range's, so in
 * binary mode (cheaper per input than counting, which halved the inputs per second) the
 * blocks that ran are not listed; the ones that did not are, with count 0. So each
 * function's blocks that have not run yet are remembered from its first report, and a
 * block counts as reached when a later report of that function no longer lists it.
 */
export class BlockCoverage {
  private readonly session = new Session();
  private readonly reached = new Set<string>();
  /** Per function that ran: its blocks not reached yet. */
  private readonly pending = new Map<string, Set<string>>();

  constructor(private readonly include: (url: string) => boolean) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: false, detailed: true });
  }

  /** The in-thread inspector session answers synchronously. */
  private post(method: string, params?: object): unknown {
    let result: unknown;
    let error: Error | null = null;
    this.session.post(method, params, (e, r) => {
      error = e;
      result = r;
    });
    if (error) throw error;
    return result;
  }

  /** Marks what ran since the last call; returns how many functions and blocks ran for the first time. */
  collect(): number {
    const { result } = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    let fresh = 0;
    for (const script of result) {
      if (!this.include(script.url)) continue;
      for (const fn of script.functions) {
        const [whole, ...blocks] = fn.ranges;
        if (!whole || whole.count === 0) continue;
        const key = `${script.scriptId}:${whole.startOffset}:${whole.endOffset}`;
        const notRun = new Set(blocks.filter((b) => b.count === 0).map((b) => `${key}:${b.startOffset}:${b.endOffset}`));
        let pending = this.pending.get(key);
        if (!pending) {
          this.pending.set(key, (pending = new Set()));
          this.reached.add(key);
          fresh++;
        } else {
          for (const b of pending) {
            if (!notRun.has(b)) {
              pending.delete(b);
              this.reached.add(b);
              fresh++;
            }
          }
        }
        // Includes blocks inside one that just ran, which V8 lists only now.
        for (const b of notRun) if (!this.reached.has(b)) pending.add(b);
      }
    }
    return fresh;
  }

  get features(): number {
    return this.reached.size;
  }

  close(): void {
    this.session.disconnect();
  }
}
