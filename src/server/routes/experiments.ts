import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { VmwuError } from '../../errors.js';
import { cancelExperimentOn, suspendExperimentOn } from '../../executors/dispatch.js';
import { experimentStatus, getJob, listExperimentSummaries, requireExperiment } from '../../sweep/index.js';
import { reopenCancelled } from '../../sweep/records/lifecycle.js';
import { timings } from '../queries.js';
import type { RouteContext } from './context.js';
import { registerGallery } from './gallery.js';

/** Experiments as a whole: the list, one experiment's status and timings, and cancelling, suspending and resuming it. */

export function registerExperiments(app: FastifyInstance, { store, worker }: RouteContext): void {
  // Everything listed comes from the experiments' rows and their kept totals: one read each, whatever their job counts.
  app.get('/api/experiments', async () => listExperimentSummaries(store));

  app.get<{ Params: { name: string } }>('/api/experiments/:name', async (req) => {
    // The page shows the first 100 failures and how many there are.
    const st = experimentStatus(store, req.params.name, { failures: 100 });
    const e = requireExperiment(store.db, req.params.name);
    const first = getJob(store.db, e.name, 1) ?? undefined;
    return {
      ...st, failureCount: st.counts.failed,
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

  registerGallery(app, store);
}
