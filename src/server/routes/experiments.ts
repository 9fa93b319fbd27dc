import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { VmwuError } from '../../errors.js';
import { cancelExperimentOn, suspendExperimentOn } from '../../executors/dispatch.js';
import { experimentStatus, getJob, listExperimentSummaries, requireExperiment } from '../../sweep/index.js';
import { reopenCancelled } from '../../sweep/records/lifecycle.js';
import { timings } from '../queries.js';
import type { RouteContext } from './context.js';

/** Experiments as a whole: the list, one experiment's status and timings, and cancelling, suspending and resuming it. */

export function registerExperiments(app: FastifyInstance, { store, worker }: RouteContext): void {
  app.get('/api/experiments', async () => listExperimentSummaries(store).map((x) => {
    let etaMs: number | null = null;
    if (x.state === 'running') etaMs = experimentStatus(store, x.name).etaMs;
    const started = store.db.prepare('SELECT MIN(started_at) AS s FROM experiment_jobs WHERE experiment = ?').get(x.name) as { s: string | null };
    return { ...x, etaMs, startedAt: started.s };
  }));

  app.get<{ Params: { name: string } }>('/api/experiments/:name', async (req) => {
    const st = experimentStatus(store, req.params.name);
    const e = requireExperiment(store.db, req.params.name);
    const first = getJob(store.db, e.name, 1) ?? undefined;
    const started = store.db.prepare('SELECT MIN(started_at) AS s FROM experiment_jobs WHERE experiment = ?').get(e.name) as { s: string | null };
    return {
      ...st, failures: st.failures.slice(0, 100), failureCount: st.failures.length, startedAt: started.s,
      paramNames: first ? Object.keys(first.params) : [], planText: e.planText, planFile: basename(e.planPath), maxRetries: e.maxRetries, resources: e.resources,
    };
  });

  app.get<{ Params: { name: string } }>('/api/experiments/:name/timings', async (req) => {
    requireExperiment(store.db, req.params.name);
    return timings(store.db, req.params.name);
  });

  app.post<{ Params: { name: string } }>('/api/experiments/:name/cancel', async (req) => {
    requireExperiment(store.db, req.params.name);
    const { state } = await cancelExperimentOn(store, req.params.name, { signal: AbortSignal.timeout(60_000) });
    return { name: req.params.name, state };
  });

  app.post<{ Params: { name: string } }>('/api/experiments/:name/suspend', async (req) => {
    requireExperiment(store.db, req.params.name);
    const taken = await suspendExperimentOn(store, req.params.name);
    return { name: req.params.name, state: requireExperiment(store.db, req.params.name).state, checkpoints: taken.map((c) => c.id) };
  });

  app.post<{ Params: { name: string } }>('/api/experiments/:name/resume', async (req) => {
    const e = requireExperiment(store.db, req.params.name);
    if (e.state === 'succeeded' || e.state === 'failed') {
      throw new VmwuError('BAD_STATE', `experiment ${e.name} has already ${e.state}`, e.state === 'failed' ? 'retry its failed jobs (POST …/jobs/N/retry)' : undefined);
    }
    reopenCancelled(store.db, e.name);
    const pid = worker(store, e.name, e.dir);
    return { name: e.name, pid };
  });
}
