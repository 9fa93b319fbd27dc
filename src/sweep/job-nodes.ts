import { VmwuError } from '../errors.js';
import type { JobResources } from '../request/resolve.js';
import { MAX_SEGMENT_VMS } from '../vm/job-segment.js';
import type { Plan } from './plan/index.js';

/**
 * How many VMs a sweep's job has (`--nodes N`, or `--nodes PARAM`: each job its
 * value of that plan parameter), checked against the plan when the experiment is
 * created so a bad value names the file, the line and the job before anything runs.
 * Pure.
 */

/** A job's VMs: its value of the plan parameter, else the experiment's number, else one. */
export function jobNodes(r: Pick<JobResources, 'nodes' | 'nodesFrom'>, params: Record<string, string>): number {
  if (r.nodesFrom !== undefined) return Number(params[r.nodesFrom]);
  return r.nodes ?? 1;
}

export interface NodesChecker {
  /** Refuses a job whose value is not a number of VMs. */
  check(job: { index: number; params: Record<string, string> }): void;
  /** The most VMs any job checked has: what a slot must hold. */
  most(): number;
}

export function nodesChecker(plan: Plan, r: Pick<JobResources, 'nodes' | 'nodesFrom'>): NodesChecker {
  let most = r.nodes ?? 1;
  const from = r.nodesFrom;
  if (from === undefined) return { check: () => undefined, most: () => most };
  const p = plan.parameters.find((x) => x.name === from);
  if (!p) {
    const names = plan.parameters.map((x) => x.name).join(', ') || 'none';
    throw new VmwuError('BAD_NODES', `--nodes ${from}: ${plan.fileName} has no parameter ${from} (it has: ${names})`, 'give a number of VMs, or the name of an integer parameter of the plan');
  }
  return {
    check(job) {
      const v = job.params[from] ?? '';
      const n = /^\d+$/.test(v) ? Number(v) : NaN;
      if (!(n >= 1 && n <= MAX_SEGMENT_VMS)) {
        throw new VmwuError('BAD_NODES', `${plan.fileName}:${p.pos.line}: parameter ${from} gives job ${job.index} ${JSON.stringify(v)} VMs (--nodes ${from}); a job has 1 to ${MAX_SEGMENT_VMS}`,
          `make every value of ${from} a whole number from 1 to ${MAX_SEGMENT_VMS}`);
      }
      most = Math.max(most, n);
    },
    most: () => most,
  };
}
