import { createHash } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import type { AccelVerdict } from '../../vm/accel.js';
import type { RunRequest, RunResult } from '../job-request.js';
import type { RunCacheChoice } from '../run-cache.js';

/**
 * What `vmwu run` and a warm pool service (`vmwu warm --keep N`) say to each
 * other over the service's unix socket: one JSON object per line. The client
 * sends its job; the service runs it in one of its warm clones (or as any job)
 * and sends what a run's hooks would see, then the result. Both ends are the
 * same user (the socket is in its private node dir); each still checks what it
 * reads. Pure.
 */

/** A line longer than this is no message of ours. */
export const MAX_LINE = 4 * 1024 * 1024;

export type ClientMessage =
  | { t: 'run'; request: RunRequest; cache: RunCacheChoice }
  | { t: 'abort' };

export type ServiceMessage =
  | { t: 'start'; id: string; runDir: string; outDir: string; accel: AccelVerdict }
  | { t: 'out'; stream: 'stdout' | 'stderr'; data: string }
  | { t: 'cached'; source: string }
  | { t: 'damaged'; why: string }
  | { t: 'result'; result: RunResult }
  | { t: 'error'; code: string; message: string; hint?: string };

export const clientMessage = z.discriminatedUnion('t', [
  z.object({ t: z.literal('run'), request: z.looseObject({ base: z.string(), argv: z.array(z.string()) }), cache: z.object({ off: z.boolean().optional(), force: z.boolean().optional() }) }),
  z.object({ t: z.literal('abort') }),
]);

export const serviceMessage = z.discriminatedUnion('t', [
  z.object({ t: z.literal('start'), id: z.string(), runDir: z.string(), outDir: z.string(), accel: z.object({ accel: z.enum(['kvm', 'tcg']), reason: z.string(), cached: z.boolean() }) }),
  z.object({ t: z.literal('out'), stream: z.enum(['stdout', 'stderr']), data: z.base64() }),
  z.object({ t: z.literal('cached'), source: z.string() }),
  z.object({ t: z.literal('damaged'), why: z.string() }),
  z.object({ t: z.literal('result'), result: z.looseObject({ id: z.string(), status: z.string(), outDir: z.string() }) }),
  z.object({ t: z.literal('error'), code: z.string(), message: z.string(), hint: z.string().optional() }),
]);

/** sun_path holds 108 bytes. */
const SOCKET_PATH_MAX = 100;

/** The service's socket for a store on this host: in the user's node dir, or the short socket root when that path is too long. */
export function warmServiceSocket(nodeDir: string, shortRoot: string, storeRoot: string): string {
  const name = `warm-${createHash('sha256').update(resolve(storeRoot)).digest('hex').slice(0, 16)}.sock`;
  const inNode = join(nodeDir, name);
  return inNode.length <= SOCKET_PATH_MAX ? inNode : join(shortRoot, name);
}

/** The request with every host path made absolute: the service runs in another directory. Pure but for `cwd`. */
export function absolutePaths(req: RunRequest, cwd: string): RunRequest {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(cwd, p));
  return {
    ...req,
    ...(req.outDir ? { outDir: abs(req.outDir) } : {}),
    ...(req.app ? { app: abs(req.app) } : {}),
    ...(req.inputs ? { inputs: req.inputs.map((i) => (typeof i === 'string' ? abs(i) : { ...i, path: abs(i.path) })) } : {}),
    ...(req.stdin && 'host' in req.stdin ? { stdin: { host: abs(req.stdin.host) } } : {}),
  };
}

/** Jobs the service does not take: a shell needs the caller's terminal, and multi-VM jobs and builds have their own path. Pure. */
export function serviceRefuses(req: RunRequest): string | undefined {
  if (req.tty) return 'an interactive shell';
  if (req.segment) return 'a VM of a multi-VM job';
  if (req.keepRoot || req.cut) return 'a build';
  if (req.resumeFrom) return 'a job going on from a checkpoint';
  if (req.checkpointable) return 'a job whose RAM is a file of its own (--checkpointable)';
  return undefined;
}
