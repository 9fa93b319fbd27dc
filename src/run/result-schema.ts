import { z } from 'zod';

/**
 * A run's result as another process hands it over (an SSH pool host's run.json, a
 * compute node's report): checked before it is believed. The values come from a
 * vmwu of ours, but partly from the guest (error messages), so they are capped.
 */

export const usageSchema = z.object({
  cpuMs: z.number().int().nonnegative(),
  maxRssKiB: z.number().int().nonnegative(),
  source: z.enum(['proc', 'sacct']),
});

/** One VM of a multi-VM job (src/run/job-request.ts VmOutcome), as a node reports it. */
export const vmOutcomeSchema = z.object({
  index: z.number().int().min(0).max(253),
  name: z.string().regex(/^node\d{1,3}$/),
  machine: z.string().min(1).max(255),
  runId: z.string().max(32),
  status: z.enum(['succeeded', 'failed', 'timeout', 'error', 'stopped', 'interrupted']),
  error: z.string().max(8192).optional(),
  start: z.enum(['restore', 'boot']).optional(),
  phases: z.record(z.string(), z.number()).optional(),
  totalMs: z.number().optional(),
  usage: usageSchema.optional(),
});

export const runResultSchema = z.object({
  id: z.string().regex(/^[0-9a-f]{6,32}$/),
  status: z.enum(['succeeded', 'failed', 'timeout', 'error', 'stopped']),
  exitCode: z.number().int().min(0).max(255).nullable(),
  accel: z.enum(['kvm', 'tcg']).optional(),
  phases: z.record(z.string(), z.number()).nullable().optional(),
  totalMs: z.number().nullable().optional(),
  error: z.object({ code: z.string().max(64), message: z.string().max(8192), hint: z.string().max(2048).optional() }).optional(),
  usage: usageSchema.optional(),
  checkpoint: z.string().regex(/^ck-[0-9a-f]{12}$/).optional(),
  start: z.object({ mode: z.enum(['restore', 'boot']), template: z.string().regex(/^[0-9a-f]{1,64}$/).optional(), checkpoint: z.string().regex(/^ck-[0-9a-f]{1,32}$/).optional(), fallback: z.string().max(2048).optional(), cache: z.string().max(2048).optional(), cpu: z.string().max(64).optional() }).optional(),
  /** A multi-VM job's VMs (a compute node's task 0 reports them all). */
  vms: z.array(vmOutcomeSchema).max(254).optional(),
});
export type CheckedRunResult = z.infer<typeof runResultSchema>;
