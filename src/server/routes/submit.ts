import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { VmwuError } from '../../errors.js';
import { checkExperimentName, createExperiment } from '../../sweep/index.js';
import { discardUpload, stageUpload } from '../uploads.js';
import type { RouteContext } from './context.js';

/** Submitting an experiment from the dashboard: its plan is staged as an upload, the experiment made and its runner started. */

/** The plan and how it runs; the request's fields are `vmwu sweep`'s flags (src/request/resolve.ts resolves them, as for the CLI). */
interface SubmitBody {
  planText?: unknown; planName?: unknown; name?: unknown; slots?: unknown; retries?: unknown; maxJobs?: unknown;
  unit?: unknown; base?: unknown; memory?: unknown; cpus?: unknown; timeout?: unknown; checkpointEvery?: unknown; cold?: unknown; data?: unknown;
  executor?: unknown; hosts?: unknown; hostTimeout?: unknown; partition?: unknown; account?: unknown; maxParallel?: unknown; slurmTime?: unknown;
}

const EXECUTORS = ['local', 'ssh', 'slurm'] as const;

export function registerSubmit(app: FastifyInstance, { store, worker }: RouteContext): void {
  // Whatever becomes of a submission (a bad plan, an unknown unit, a client gone
  // mid-way), its upload directory stays only if an experiment now uses it.
  const staged = new WeakMap<FastifyRequest, string>();
  const stage = (req: FastifyRequest, fileName: string, text: string) => {
    const u = stageUpload(store, fileName, text);
    staged.set(req, u.dir);
    return u.planPath;
  };
  const keepingOnlyUsedUpload = <Q extends FastifyRequest, R>(handler: (req: Q, reply: FastifyReply) => Promise<R>) =>
    async (req: Q, reply: FastifyReply): Promise<R> => {
      try {
        return await handler(req, reply);
      } finally {
        const dir = staged.get(req);
        if (dir) discardUpload(store, dir);
      }
    };

  app.post<{ Body: SubmitBody }>('/api/experiments', keepingOnlyUsedUpload(async (req, reply) => {
    const b = req.body;
    if (!b || typeof b !== 'object' || typeof b.planText !== 'string' || !b.planText.trim()) throw new VmwuError('BAD_VALUE', 'planText (the plan file\'s text) is required');
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
    const num = (v: unknown, what: string) => {
      if (v === undefined || v === null || v === '') return undefined;
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new VmwuError('BAD_VALUE', `${what}: expected a whole number`);
      return n;
    };
    const name = str(b.name);
    if (name !== undefined) checkExperimentName(name);
    // The plan lands in a directory of its own, which becomes the experiment root (root: paths resolve inside it).
    const fileName = (str(b.planName) ?? 'plan.pln').replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[._-]+/, '') || 'plan.pln';
    const planPath = stage(req, fileName, b.planText);
    const executor = str(b.executor);
    if (executor !== undefined && !(EXECUTORS as readonly string[]).includes(executor)) throw new VmwuError('BAD_VALUE', `executor ${JSON.stringify(executor)}: expected one of ${EXECUTORS.join(', ')}`);
    const e = await createExperiment(store, {
      planPath, name, slots: num(b.slots, 'slots'), retries: num(b.retries, 'retries'), maxJobs: num(b.maxJobs, 'maxJobs'),
      unit: str(b.unit), base: str(b.base), memory: str(b.memory), cpus: str(b.cpus), timeout: str(b.timeout), checkpointEvery: str(b.checkpointEvery),
      cold: b.cold === true, data: Array.isArray(b.data) ? b.data.filter((x): x is string => typeof x === 'string') : [],
      executor: executor as (typeof EXECUTORS)[number] | undefined, hosts: str(b.hosts), hostTimeout: str(b.hostTimeout),
      partition: str(b.partition), account: str(b.account), maxParallel: str(b.maxParallel), slurmTime: str(b.slurmTime),
    });
    const pid = worker(store, e.name, e.dir);
    return reply.code(201).send({ name: e.name, jobs: e.jobCount, pid });
  }));
}
