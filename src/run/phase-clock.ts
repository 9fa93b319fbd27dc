/** A run's phases (template, prepare, boot or restore, stage-in, exec, …), timed on the host. */

/** `template`: finding, checking or making the host's fast-start template (a first job of its shape makes it); part of what came before the VM, shown apart. */
export const PhaseNames = ['template', 'prepare', 'boot', 'restore', 'stageIn', 'exec', 'stageOut', 'shutdown', 'collect'] as const;
export type PhaseName = (typeof PhaseNames)[number];
/** `template` is absent from records made before it was a phase of its own. */
export type Phases = Record<Exclude<PhaseName, 'template'>, number> & { template?: number };

/**
 * Host-side phase timings from the arrival times of control events: Unal's B/I/E/O/S
 * phases measured, not derived. Each phase ends at its event; a phase whose event
 * never came (a crash, a timeout) stays 0 and its time falls into the next one seen.
 */
export class PhaseClock {
  private marks = new Map<string, number>();
  /** Until the agent is ready the guest boots, or is restored from a template: the phase is named for which. */
  startedBy: 'boot' | 'restore' = 'boot';
  constructor(private readonly now: () => number = () => performance.now()) {}
  mark(name: string): void {
    if (!this.marks.has(name)) this.marks.set(name, this.now());
  }
  has(name: string): boolean {
    return this.marks.has(name);
  }
  phases(): Phases & { template: number } {
    const order: [PhaseName, string][] = [
      ['prepare', 'prepared'], [this.startedBy, 'ready'], ['stageIn', 'stagein'], ['exec', 'exec'],
      ['stageOut', 'stageout'], ['shutdown', 'exited'], ['collect', 'collected'],
    ];
    const out = Object.fromEntries(PhaseNames.map((p) => [p, 0])) as Phases & { template: number };
    let prev = this.marks.get('start');
    if (prev === undefined) return out;
    for (const [phase, mark] of order) {
      const t = this.marks.get(mark);
      if (t === undefined) continue;
      out[phase] = Math.max(0, Math.round(t - prev));
      prev = t;
    }
    // Within the preparation: between its own two marks.
    const [from, to] = [this.marks.get('templating'), this.marks.get('templated')];
    if (from !== undefined && to !== undefined) {
      out.template = Math.min(out.prepare, Math.max(0, Math.round(to - from)));
      out.prepare -= out.template;
    }
    return out;
  }
  total(): number {
    const s = this.marks.get('start');
    return s === undefined ? 0 : Math.round(this.now() - s);
  }
}
