import type { Db } from '../store/db.js';
import { changeSignatures } from './queries.js';

/** Live updates for the dashboard: what changed in the store, found once per tick while anyone listens, and fanned out to every event stream. */

export interface ChangeEvent {
  type: 'change';
  /** Experiments whose state, job counts or attempts changed (or appeared, or went away). */
  experiments: string[];
  /** Units or bases were added or removed. */
  catalog: boolean;
}

/**
 * The one place that looks for changes in the store: every `tickMs`, while anyone
 * listens, it compares a cheap per-experiment aggregate with the last one and fans
 * what changed out to every subscriber (the SSE clients, the live-log streams).
 */
export class ChangeHub {
  private subs = new Set<(ev: ChangeEvent) => void>();
  private timer: NodeJS.Timeout | undefined;
  private last = new Map<string, string>();
  private lastCatalog = '';

  constructor(private readonly db: Db, private readonly tickMs = 500) {}

  subscribe(fn: (ev: ChangeEvent) => void): () => void {
    if (!this.subs.size) this.start();
    this.subs.add(fn);
    return () => {
      this.subs.delete(fn);
      if (!this.subs.size) this.stop();
    };
  }

  get subscribers(): number {
    return this.subs.size;
  }

  private catalogSig(): string {
    const u = this.db.prepare('SELECT COUNT(*) AS n, MAX(created_at) AS t FROM units').get() as { n: number; t: string | null };
    const b = this.db.prepare('SELECT COUNT(*) AS n, MAX(created_at) AS t FROM bases').get() as { n: number; t: string | null };
    return `${u.n}|${u.t}|${b.n}|${b.t}`;
  }

  private start(): void {
    this.last = changeSignatures(this.db);
    this.lastCatalog = this.catalogSig();
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One comparison; public so tests can drive it. */
  tick(): void {
    let now: Map<string, string>;
    let catalog: string;
    try {
      now = changeSignatures(this.db);
      catalog = this.catalogSig();
    } catch {
      return; // a closed or busy database: try again next tick
    }
    const changed: string[] = [];
    for (const [k, v] of now) if (this.last.get(k) !== v) changed.push(k);
    for (const k of this.last.keys()) if (!now.has(k)) changed.push(k);
    const catalogChanged = catalog !== this.lastCatalog;
    this.last = now;
    this.lastCatalog = catalog;
    if (!changed.length && !catalogChanged) return;
    const ev: ChangeEvent = { type: 'change', experiments: changed, catalog: catalogChanged };
    for (const fn of [...this.subs]) {
      try {
        fn(ev);
      } catch {
        // one broken subscriber must not stop the others
      }
    }
  }

  close(): void {
    this.subs.clear();
    this.stop();
  }
}
