import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { z } from 'zod';
import { VmwuError } from '../../errors.js';
import type { CtlMessage } from '../../run/control-port.js';
import type { JobRequest, RunResult, VmOutcome } from '../../run/job-request.js';
import { gatherPeerOutputs, nodeFailure, PEER_WAIT_ARGV, vmOutcome } from '../../run/multi-vm.js';
import { PhaseClock } from '../../run/phase-clock.js';
import { newRunId } from '../../run/job-request.js';
import { vmOutcomeSchema } from '../../run/result-schema.js';
import { inSegmentDir } from '../../run/segment-dir.js';
import { PEER_GRACE_MS } from '../../run/segment-vms.js';
import { segmentHostName } from '../../vm/job-segment.js';
import { startSegmentHub } from '../../vm/segment-hub.js';
import { startSegmentLink } from '../../vm/segment-link.js';
import { connectToHub, listenForVms } from '../../vm/segment-tls.js';
import { writeFileAtomic, type TaskFile } from './task-files.js';

/**
 * A multi-VM job on a batch allocation of N nodes: `srun` starts one task per
 * node (SLURM_PROCID is its VM's number), each booting one VM of the job.
 * Task 0 runs the job's hub and VM 0, and listens for the others (TLS keyed by
 * the job's token, src/vm/segment-tls.ts); it writes where, beside the attempt on
 * the shared filesystem, and each other task links its VM there. Task 0 alone
 * reports the attempt: when VM 0's command has ended, the others are released
 * (guest/agent) and task 0 waits for each one's word (a file beside the attempt)
 * before it reports them all. A VM whose link goes before VM 0's command has
 * ended fails the job; when task 0 goes, the hub goes, and every other VM stops.
 */

/** One VM of a multi-VM job on a node: its place on the segment, what it runs if not the job's command, where its outputs go, and what stops it. */
export interface VmPart {
  segment: NonNullable<JobRequest['segment']>;
  argv?: string[];
  outDir?: string;
  signal?: AbortSignal;
  onEvent?(msg: CtlMessage): void;
}

/** How long task 0 waits for every other VM to join before it gives the job up. */
const JOIN_MS = 10 * 60_000;

const hubFileOf = (outDir: string) => `${outDir}.segment.json`;
const peerDirOf = (outDir: string, k: number) => `${outDir}.node-${k}`;
const peerWordOf = (outDir: string, k: number) => `${outDir}.node-${k}.json`;

const hubFileSchema = z.object({ host: z.string().min(1).max(255), port: z.number().int().min(1).max(65535) });

/** This task's VM: Slurm's task rank within the job's step. */
export function segmentIndexHere(size: number, env: NodeJS.ProcessEnv = process.env): number {
  const k = Number(env.SLURM_PROCID ?? '0');
  if (!Number.isInteger(k) || k < 0 || k >= size) {
    throw new VmwuError('BAD_TASK', `SLURM_PROCID ${env.SLURM_PROCID} is not a VM of this job of ${size}`, 'the batch script starts one task per node with srun');
  }
  return k;
}

/** Task 0: the hub, VM 0, and the word of every other VM. */
export async function runHubTask(task: TaskFile, runVm0: (vm: VmPart) => Promise<RunResult>): Promise<RunResult & { vms?: VmOutcome[] }> {
  const { size: n, token, outputsAll } = task.segment!;
  return inSegmentDir(task.store, async (dir, user) => {
    const hub = await startSegmentHub(dir, n, user);
    const lost = new AbortController();
    let lostVm: number | undefined;
    // From VM 0's command's end (or VM 0's own end) on, another VM going is no failure of it.
    let commandEnded = false;
    const joined = new Set<number>();
    const fail = (k: number) => {
      if (commandEnded || lostVm !== undefined) return;
      lostVm = k;
      lost.abort();
    };
    const listener = await listenForVms(token, (k, s) => {
      if (k === 0 || !hub.attach(k, s)) {
        s.destroy();
        return;
      }
      joined.add(k);
      s.on('close', () => fail(k));
    });
    const joinTimer = setTimeout(() => {
      const missing = Array.from({ length: n }, (_, k) => k).find((k) => k > 0 && !joined.has(k));
      if (missing !== undefined) fail(missing);
    }, JOIN_MS);
    try {
      writeFileAtomic(hubFileOf(task.outDir), JSON.stringify({ host: hostname(), port: listener.port }));
      const r = await runVm0({
        segment: { index: 0, size: n, socket: hub.sockets[0]!, token }, signal: lost.signal,
        onEvent: (m) => {
          if (m.event === 'exec') commandEnded = true;
        },
      });
      commandEnded = true;
      clearTimeout(joinTimer);
      // Released, the others end by themselves; otherwise (a walltime, an error, a VM lost) they stop when the hub goes.
      const released = r.status === 'succeeded' || r.status === 'failed';
      if (!released) hub.close();
      const words = await peerWords(task.outDir, n, released ? PEER_GRACE_MS : 30_000);
      const vms = [vmOutcome(0, hostname(), r.id, r, lostVm), ...words.map((w, i) => w ?? missingWord(i + 1))];
      const peers = Array.from({ length: n - 1 }, (_, i) => peerDirOf(task.outDir, i + 1));
      if (outputsAll) gatherPeerOutputs(r.outDir, peers);
      if (lostVm !== undefined) {
        const w = words[lostVm - 1];
        return { ...r, ...nodeFailure(lostVm, { status: w?.status ?? 'error', error: { message: w?.error ?? 'its link to the job\'s network went' } }), vms };
      }
      return { ...r, vms };
    } finally {
      clearTimeout(joinTimer);
      listener.close();
      hub.close();
      rmSync(hubFileOf(task.outDir), { force: true });
      for (let k = 1; k < n; k++) {
        rmSync(peerDirOf(task.outDir, k), { recursive: true, force: true });
        rmSync(peerWordOf(task.outDir, k), { force: true });
      }
    }
  });
}

function missingWord(k: number): VmOutcome {
  return { index: k, name: segmentHostName(k), machine: 'unknown', runId: '', status: 'error', error: 'its task said nothing of it' };
}

/** Each other VM's word, as it comes (read as untrusted input), until all are in or `ms` have passed. */
async function peerWords(outDir: string, n: number, ms: number): Promise<(VmOutcome | undefined)[]> {
  const until = Date.now() + ms;
  const read = (k: number): VmOutcome | undefined => {
    try {
      const parsed = vmOutcomeSchema.safeParse(JSON.parse(readFileSync(peerWordOf(outDir, k), 'utf8')));
      return parsed.success && parsed.data.index === k ? (parsed.data as VmOutcome) : undefined;
    } catch {
      return undefined;
    }
  };
  for (;;) {
    const words = Array.from({ length: n - 1 }, (_, i) => read(i + 1));
    if (words.every(Boolean) || Date.now() >= until) return words;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Where task 0's hub listens, once it has written it. */
async function hubAddress(outDir: string, signal: AbortSignal | undefined): Promise<{ host: string; port: number }> {
  const until = Date.now() + JOIN_MS;
  for (;;) {
    try {
      const parsed = hubFileSchema.safeParse(JSON.parse(readFileSync(hubFileOf(outDir), 'utf8')));
      if (parsed.success) return parsed.data;
    } catch {
      // not written yet
    }
    // Task 0 reported the attempt (its run.json is there): this VM is too late to join.
    if (existsSync(`${outDir}/run.json`) || Date.now() >= until || signal?.aborted) throw new VmwuError('NO_HUB', 'the job\'s first task never said where its network is');
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Task k > 0: VM k, linked to task 0's hub; its word is left beside the attempt for task 0. */
export async function runPeerTask(task: TaskFile, k: number, opts: { signal?: AbortSignal },
  runVm: (vm: VmPart, id: string, clock: PhaseClock) => Promise<RunResult>): Promise<{ code: number; result: RunResult | null }> {
  const { size: n, token } = task.segment!;
  const outDir = peerDirOf(task.outDir, k);
  const id = newRunId();
  const clock = new PhaseClock();
  clock.mark('start');
  // Claimed as task 0 claims the attempt: a second copy of this task does nothing.
  mkdirSync(dirname(outDir), { recursive: true });
  try {
    mkdirSync(outDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return { code: 0, result: null };
  }
  let result: RunResult;
  try {
    const hub = await hubAddress(task.outDir, opts.signal);
    // Slurm says where the step was launched from: task 0's node (its host name may not resolve here).
    const host = process.env.SLURM_LAUNCH_NODE_IPADDR || hub.host;
    const down = new AbortController();
    result = await inSegmentDir(task.store, async (dir, user) => {
      const link = await startSegmentLink(dir, () => connectToHub(host, hub.port, token, k), user, () => down.abort());
      try {
        return await runVm({ segment: { index: k, size: n, socket: link.socket, token }, argv: PEER_WAIT_ARGV, outDir, signal: down.signal }, id, clock);
      } finally {
        link.close();
      }
    });
  } catch (e) {
    result = { id, status: 'error', exitCode: null, accel: 'tcg', outDir, phases: clock.phases(), totalMs: clock.total(), error: { code: 'INTERNAL', message: (e as Error).message } };
  }
  writeFileAtomic(peerWordOf(task.outDir, k), JSON.stringify(vmOutcome(k, hostname(), result.id, result, undefined)));
  return { code: result.status === 'succeeded' ? 0 : 1, result };
}
