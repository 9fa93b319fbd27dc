import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { loadConfig } from '../config.js';
import { VmwuError } from '../errors.js';
import { chownDirNoFollow, ensurePrivateDir } from '../store/private-dir.js';
import type { Store } from '../store/store.js';
import { MAX_SEGMENT_VMS, segmentHostName } from '../vm/job-segment.js';
import { openWayTo, qemuUser } from '../vm/qemu-user.js';
import { startSegmentHub, type SegmentHub } from '../vm/segment-hub.js';
import type { RunHooks, RunRequest, RunResult, VmOutcome } from './job-request.js';
import { openNodeDirs, shortSocketRoot } from './node-dirs.js';
import { runJob } from './run.js';

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

/** How long the other VMs have to stage out and power off once VM 0 has ended. */
const PEER_GRACE_MS = 60_000;

/** sun_path holds 108 bytes. */
const SOCKET_PATH_MAX = 100;

function hubDir(instances: string): string {
  const name = `segment-${randomBytes(6).toString('hex')}`;
  const inInstances = join(instances, name);
  return join(inInstances, 'vm-999.sock').length <= SOCKET_PATH_MAX ? inInstances : join(shortSocketRoot(), name);
}

/** Starts the job's hub in a private directory QEMU's user (if any) can reach; nothing is left when it cannot start. */
async function openHub(store: Store, nodes: number): Promise<SegmentHub> {
  const config = await loadConfig(store.paths.root);
  const dirs = openNodeDirs(config.scratch, store.paths.root);
  const user = qemuUser();
  const dir = hubDir(dirs.instances);
  if (dirname(dir) !== dirs.instances) {
    ensurePrivateDir(dirname(dirname(dir)));
    ensurePrivateDir(dirname(dir));
  }
  mkdirSync(dir, { mode: 0o700 });
  try {
    if (user) {
      openWayTo(dirname(dirname(dir)), dirname(dir));
      chownDirNoFollow(dir, user.uid, user.gid);
    }
    return await startSegmentHub(dir, nodes, user);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export function checkNodes(nodes: number): void {
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > MAX_SEGMENT_VMS) {
    throw new VmwuError('BAD_NODES', `--nodes ${nodes}: a multi-VM job has 2 to ${MAX_SEGMENT_VMS} VMs`, 'give --nodes 2 or more (one VM needs no --nodes)');
  }
}

export async function runMultiVm(store: Store, req: RunRequest, o: MultiVmOptions, hooks: RunHooks = {}): Promise<MultiVmResult> {
  const { nodes } = o;
  checkNodes(nodes);
  if (req.keepRoot || req.cut || req.tty || req.resumeFrom) throw new VmwuError('BAD_NODES', 'builds, shells and restores run in one VM');
  const hub = await openHub(store, nodes);
  const token = randomBytes(16).toString('hex');
  // VM 0 and the job stop together; each other VM can also be stopped alone (once VM 0 has ended, after the grace).
  const stopAll = new AbortController();
  const stopPeers = Array.from({ length: nodes }, () => new AbortController());
  const onAbort = () => stopAll.abort();
  hooks.signal?.addEventListener('abort', onAbort);
  let failed: { index: number; result: RunResult } | undefined;
  let graceTimer: NodeJS.Timeout | undefined;
  try {
    const vm = async (index: number): Promise<RunResult> => {
      const own: RunRequest = {
        ...req, segment: { index, size: nodes, socket: hub.sockets[index]!, token },
        ...(index === 0 ? {} : { argv: PEER_WAIT_ARGV, stdin: undefined, keep: o.outputsAll ? req.keep : [], outDir: undefined }),
      };
      const signal = index === 0 ? stopAll.signal : AbortSignal.any([stopAll.signal, stopPeers[index]!.signal]);
      const result = await runJob(store, own, index === 0 ? { ...hooks, signal } : { signal, driver: hooks.driver });
      if (index === 0) {
        // A command that ended had VM 0's agent release the others: whoever has not ended by the grace is stopped.
        // A VM 0 that ended otherwise (walltime, error) released nothing: they stop now.
        const released = result.status === 'succeeded' || result.status === 'failed';
        if (released) graceTimer = setTimeout(() => stopPeers.forEach((c) => c.abort()), PEER_GRACE_MS);
        else stopPeers.forEach((c) => c.abort());
      } else if (result.status !== 'succeeded' && !stopAll.signal.aborted && !stopPeers[index]!.signal.aborted) {
        // A VM that fails while the job runs fails the job: every VM stops.
        failed ??= { index, result };
        stopAll.abort();
      }
      return result;
    };
    const results = await Promise.all(Array.from({ length: nodes }, (_, k) => vm(k)));
    const vms = results.map((r, index) => outcomeOf(r, index, failed?.index));
    if (o.outputsAll) gatherPeerOutputs(results);
    const main = results[0]!;
    if (failed && !hooks.signal?.aborted) {
      const why = failed.result.error?.message ?? `its job ended ${failed.result.status}`;
      return {
        ...main, status: 'failed', exitCode: null, vms,
        error: { code: 'NODE_FAILED', message: `VM ${failed.index} (${segmentHostName(failed.index)}) of the job failed: ${why}`, hint: 'every VM of the job was stopped; a retry starts them all again' },
      };
    }
    return { ...main, vms };
  } finally {
    clearTimeout(graceTimer);
    hooks.signal?.removeEventListener('abort', onAbort);
    hub.close();
  }
}

function outcomeOf(r: RunResult, index: number, failedIndex: number | undefined): VmOutcome {
  // A VM vmwu stopped because another failed, or because it outlived the grace, did not fail of itself.
  const stopped = index !== failedIndex && r.status === 'error' && r.error?.code === 'INTERRUPTED';
  return {
    index, name: segmentHostName(index), machine: hostname(), runId: r.id,
    status: stopped ? 'stopped' : r.status,
    ...(stopped ? { error: failedIndex !== undefined ? `stopped when VM ${failedIndex} failed` : 'stopped with the job' } : r.error ? { error: r.error.message } : {}),
    phases: r.phases, totalMs: r.totalMs, ...(r.usage ? { usage: r.usage } : {}),
  };
}

/** `--outputs all`: each other VM's out dir becomes node-K/ in VM 0's. */
function gatherPeerOutputs(results: RunResult[]): void {
  const into = results[0]!.outDir;
  for (const [k, r] of results.entries()) {
    if (k === 0 || !existsSync(r.outDir)) continue;
    const to = join(into, `node-${k}`);
    try {
      renameSync(r.outDir, to);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EXDEV') throw e;
      // The run's own dir is in the store; VM 0's out dir may be on another filesystem.
      cpSync(r.outDir, to, { recursive: true, verbatimSymlinks: true, errorOnExist: true, force: false });
      rmSync(r.outDir, { recursive: true, force: true });
    }
  }
}
