import type { ExecutorChoice } from '../request/executor.js';
import type { Db } from '../store/db.js';

/** Which executor an experiment runs on, with its options: stored when it is created, read by the dispatch (src/executors/dispatch.ts) and the executors. */

export function setExecutor(db: Db, experiment: string, choice: ExecutorChoice): void {
  db.prepare(`INSERT INTO experiment_executors (experiment, kind, options) VALUES (?, ?, ?)
    ON CONFLICT (experiment) DO UPDATE SET kind = excluded.kind, options = excluded.options`)
    .run(experiment, choice.kind, JSON.stringify(choice.options));
}

export function getExecutor(db: Db, experiment: string): ExecutorChoice {
  const r = db.prepare('SELECT kind, options FROM experiment_executors WHERE experiment = ?').get(experiment) as { kind: ExecutorChoice['kind']; options: string } | undefined;
  return r ? { kind: r.kind, options: JSON.parse(r.options) as Record<string, unknown> } : { kind: 'local', options: {} };
}
