import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { jobCheckpoints } from '../../run/checkpoint/records.js';
import { getRun } from '../../run/records.js';
import { listAttempts, requireExperiment } from '../../sweep/index.js';
import { retryJob } from '../../sweep/retry-job.js';
import type { JobState } from '../../sweep/states.js';
import { listFiles } from '../files.js';
import { PARAM_NAME, queryJobs, type JobQuery } from '../queries.js';
import { attemptFile, deny, jobOf, type RouteContext } from './context.js';
import { registerPreviews } from './previews.js';

/** An experiment's jobs: a page of them, one job with its attempts, a file of its outputs, and retrying it. */

const SORTS = new Set(['index', 'state', 'exit', 'attempts', 'duration', 'started', 'host', 'cpu', 'rss']);

export function registerJobs(app: FastifyInstance, { store, worker }: RouteContext): void {
  app.get<{ Params: { name: string }; Querystring: Record<string, string> }>('/api/experiments/:name/jobs', async (req) => {
    requireExperiment(store.db, req.params.name);
    const q = req.query;
    const params: Record<string, string> = {};
    for (const [k, v] of Object.entries(q)) {
      if (k.startsWith('param.') && PARAM_NAME.test(k.slice(6)) && v !== '') params[k.slice(6)] = v;
    }
    const query: JobQuery = {
      state: q.state ? (q.state.split(',') as JobState[]) : undefined, params,
      sort: SORTS.has(q.sort ?? '') ? (q.sort as JobQuery['sort']) : 'index', dir: q.dir === 'desc' ? 'desc' : 'asc',
      offset: Number(q.offset) || 0, limit: Number(q.limit) || 50,
    };
    return queryJobs(store.db, req.params.name, query);
  });

  app.get<{ Params: { name: string; idx: string } }>('/api/experiments/:name/jobs/:idx', async (req) => {
    const j = jobOf(store, req.params.name, req.params.idx);
    const checkpoints = jobCheckpoints(store.db, j.experiment, j.index);
    const attempts = listAttempts(store.db, j.experiment, j.index).map((a) => ({
      // vms: a multi-VM job's VMs (name, machine, status, error, phases, usage), null for a job of one VM.
      ...a, vms: a.vms ?? null, files: listFiles(a.outDir), runStatus: a.runId ? getRun(store.db, a.runId)?.status ?? null : null,
      checkpoints: checkpoints.filter((c) => c.attempt === a.attempt).map((c) => ({ id: c.id, createdAt: c.createdAt, bytes: c.bytes, stopped: c.stopped })),
    }));
    return { job: j, attempts };
  });

  app.get<{ Params: { name: string; idx: string; '*': string }; Querystring: { attempt?: string } }>('/api/experiments/:name/jobs/:idx/files/*', async (req, reply) => {
    const found = attemptFile(store, req.params, req.query.attempt, req.raw.url ?? '', '/files/');
    if ('status' in found) return deny(reply, found.status, found.error, found.message);
    const { file } = found;
    return reply.header('content-type', 'application/octet-stream')
      .header('content-disposition', `attachment; filename="${basename(file).replace(/[^A-Za-z0-9._-]/g, '_')}"`)
      .header('content-length', statSync(file).size)
      .send(createReadStream(file));
  });

  app.post<{ Params: { name: string; idx: string } }>('/api/experiments/:name/jobs/:idx/retry', async (req) => {
    const j = jobOf(store, req.params.name, req.params.idx);
    const r = retryJob(store.db, j.experiment, j.index);
    // A living runner of a running experiment picks the job up itself; otherwise a worker is started.
    const pid = r.runnerAlive ? null : worker(store, j.experiment, requireExperiment(store.db, j.experiment).dir);
    return { name: j.experiment, job: j.index, pid };
  });

  registerPreviews(app, store);
}
