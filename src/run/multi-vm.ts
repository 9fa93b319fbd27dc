import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import type { Store } from '../store/store.js';
import { MAX_SEGMENT_VMS, segmentHostName } from '../vm/job-segment.js';
import { startSegmentHub } from '../vm/segment-hub.js';
import type { RunHooks, RunRequest, RunResult, VmOutcome } from './job-request.js';
import { runJob } from './run.js';
import { inSegmentDir } from './segment-dir.js';
import { runSegmentVms } from './segment-vms.js';

/**
 * A job of N VMs on this host (`vmwu run --nodes N`): N VMs of the same unit on a
 * private segment of their own (src/vm/job-segment.ts, its hub src/vm/segment-hub.ts).
 * The command runs on VM 0 (node0) once the others answer there; the job's exit
 * code and outputs are VM 0's (with `outputsAll`, every VM's, the others' under
 * node-K/). The others hold the same inputs at the same paths (an MPI program's
 * ranks find their files) and wait until VM 0's command has ended: its agent then
 * releases them, and they stage out and power off as any job does. Failure is
 * whole: when any VM fails before VM 0 has ended, every VM stops and the result
 * names it.
 */

export interface MultiVmResult extends RunResult {
  vms: VmOutcome[];
}

export interface MultiVmOptions {
  nodes: number;
  /** Keep every VM's outputs, VM K's under `<outDir>/node-K` (`--outputs all`). */
  outputsAll?: boolean;
}

/**
 * What the VMs other than VM 0 run: a wait on the release line node0's agent
 * writes them when its command has ended (guest/agent; the agent holds the pipe
 * open from its start, so a release that comes early is not lost).
 */
export const PEER_WAIT_ARGV = ['sh', '-c', 'read -r line </run/vmwu-release'];

export function checkNodes(nodes: number): void {
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > MAX_SEGMENT_VMS) {
    throw new VmwuError('BAD_NODES', `--nodes ${nodes}: a multi-VM job has 2 to ${MAX_SEGMENT_VMS} VMs`, 'give --nodes 2 or more (one VM needs no --nodes)');
  }
}

/** The job's own secret, which vmwu-rsh asks of every command (src/vm/job-segment.ts segmentEnv). */
export const segmentToken = (): string => randomBytes(16).toString('hex');

export async function runMultiVm(store: Store, req: RunRequest, o: MultiVmOptions, hooks: RunHooks = {}): Promise<MultiVmResult> {
  const { nodes } = o;
  checkNodes(nodes);
  if (req.keepRoot || req.cut || req.tty || req.resumeFrom) throw new VmwuError('BAD_NODES', 'builds, shells and restores run in one VM');
  return inSegmentDir(store.paths.root, async (dir, user) => {
    const hub = await startSegmentHub(dir, nodes, user);
    const token = segmentToken();
    try {
      const { results, failed } = await runSegmentVms(nodes, (index, signal) => runJob(store, {
        ...req, segment: { index, size: nodes, socket: hub.sockets[index]!, token },
        ...(index === 0 ? {} : { argv: PEER_WAIT_ARGV, script: undefined, stdin: undefined, keep: o.outputsAll ? req.keep : [], outDir: undefined }),
      }, index === 0 ? { ...hooks, signal } : { signal, driver: hooks.driver }), { signal: hooks.signal });
      const vms = results.map((r, index) => vmOutcome(index, hostname(), r.id, r, failed));
      if (o.outputsAll) gatherPeerOutputs(results[0]!.outDir, results.slice(1).map((r) => r.outDir));
      return { ...results[0]!, ...(failed !== undefined && !hooks.signal?.aborted ? nodeFailure(failed, results[failed]!) : {}), vms };
    } finally {
      hub.close();
    }
  });
}

/** What a multi-VM job's result says when VM `k` failed it. */
export function nodeFailure(k: number, r: { status: string; error?: { message: string } }): Pick<RunResult, 'status' | 'exitCode' | 'error'> {
  const why = r.error?.message ?? `its job ended ${r.status}`;
  return {
    status: 'failed', exitCode: null,
    error: { code: 'NODE_FAILED', message: `VM ${k} (${segmentHostName(k)}) of the job failed: ${why}`, hint: 'every VM of the job was stopped; a retry starts them all again' },
  };
}

/** What a VM of a multi-VM job ran as, and how it ended, wherever it ran. */
export interface VmEnded {
  status: VmOutcome['status'];
  error?: { code: string; message: string };
  phases?: RunResult['phases'] | null;
  totalMs?: number | null;
  usage?: RunResult['usage'];
  start?: RunResult['start'];
}

/** VM `index`'s outcome; `failedIndex`: the VM whose failure ended the job, if one did. */
export function vmOutcome(index: number, machine: string, runId: string | null, r: VmEnded, failedIndex: number | undefined): VmOutcome {
  // A VM vmwu stopped because another failed, or because it outlived the grace, did not fail of itself.
  const stopped = index !== failedIndex && r.status === 'error' && r.error?.code === 'INTERRUPTED';
  return {
    index, name: segmentHostName(index), machine, runId: runId ?? '',
    status: stopped ? 'stopped' : r.status,
    ...(stopped ? { error: failedIndex !== undefined ? `stopped when VM ${failedIndex} failed` : 'stopped with the job' } : r.error ? { error: r.error.message } : {}),
    ...(r.start ? { start: r.start.mode } : {}), ...(r.phases ? { phases: r.phases } : {}), ...(r.totalMs != null ? { totalMs: r.totalMs } : {}), ...(r.usage ? { usage: r.usage } : {}),
  };
}

/** `--outputs all`: each other VM's out dir (`peers[K-1]`) becomes node-K/ in VM 0's. */
export function gatherPeerOutputs(into: string, peers: string[]): void {
  for (const [i, from] of peers.entries()) {
    if (!existsSync(from)) continue;
    const to = join(into, `node-${i + 1}`);
    try {
      renameSync(from, to);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
      // The run's own dir is in the store; VM 0's out dir may be on another filesystem.
      cpSync(from, to, { recursive: true, verbatimSymlinks: true, errorOnExist: true, force: false });
      rmSync(from, { recursive: true, force: true });
    }
  }
}
