import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadConfig } from '../config.js';
import { VmwuError } from '../errors.js';
import { chownDirNoFollow, ensurePrivateDir } from '../store/private-dir.js';
import type { Store } from '../store/store.js';
import { MAX_SEGMENT_VMS, segmentHostName } from '../vm/job-segment.js';
import { openWayTo, qemuUser } from '../vm/qemu-user.js';
import { startSegmentHub, type SegmentHub } from '../vm/segment-hub.js';
import type { RunHooks, RunRequest, RunResult } from './job-request.js';
import { openNodeDirs, shortSocketRoot } from './node-dirs.js';
import { runJob } from './run.js';

/**
 * A job of N VMs on this host (`vmwu run --nodes N`): N VMs of the same unit on a
 * private segment of their own (src/vm/job-segment.ts, its hub src/vm/segment-hub.ts).
 * The command runs on VM 0 (node0) once the others answer there; the job's exit
 * code and outputs are VM 0's. The others hold the same inputs at the same paths
 * (an MPI program's ranks find their files) and wait until VM 0 ends. Failure is
 * whole: when any VM ends before VM 0 has, every VM stops and the result names it.
 */

export interface MultiVmResult extends RunResult {
  /** Every VM of the job: its run, how it ended. */
  vms: { index: number; host: string; runId: string; status: RunResult['status']; error?: string }[];
}

/** What the VMs other than VM 0 run: nothing, until vmwu stops them. */
const WAIT_ARGV = ['sh', '-c', 'while :; do sleep 3600; done'];

/** sun_path holds 108 bytes. */
const SOCKET_PATH_MAX = 100;

function hubDir(instances: string): string {
  const name = `segment-${randomBytes(6).toString('hex')}`;
  const inInstances = join(instances, name);
  return join(inInstances, 'vm-999.sock').length <= SOCKET_PATH_MAX ? inInstances : join(shortSocketRoot(), name);
}

export async function runMultiVm(store: Store, req: RunRequest, nodes: number, hooks: RunHooks = {}): Promise<MultiVmResult> {
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > MAX_SEGMENT_VMS) {
    throw new VmwuError('BAD_NODES', `--nodes ${nodes}: a multi-VM job has 2 to ${MAX_SEGMENT_VMS} VMs`, 'give --nodes 2 or more (one VM needs no --nodes)');
  }
  if (req.keepRoot || req.cut || req.tty || req.resumeFrom) throw new VmwuError('BAD_NODES', 'builds, shells and restores run in one VM');
  const config = await loadConfig(store.paths.root);
  const dirs = openNodeDirs(config.scratch, store.paths.root);
  const user = qemuUser();
  const dir = hubDir(dirs.instances);
  if (dirname(dir) !== dirs.instances) {
    ensurePrivateDir(dirname(dirname(dir)));
    ensurePrivateDir(dirname(dir));
  }
  mkdirSync(dir, { mode: 0o700 });
  let hub: SegmentHub;
  try {
    if (user) {
      openWayTo(dirname(dirname(dir)), dirname(dir));
      chownDirNoFollow(dir, user.uid, user.gid);
    }
    hub = await startSegmentHub(dir, nodes, user);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const token = randomBytes(16).toString('hex');
  const stopAll = new AbortController();
  const onAbort = () => stopAll.abort();
  hooks.signal?.addEventListener('abort', onAbort);
  let firstToEnd: { index: number; result: RunResult } | undefined;
  try {
    const vm = async (index: number): Promise<RunResult> => {
      const own: RunRequest = {
        ...req, segment: { index, size: nodes, socket: hub.sockets[index]!, token },
        ...(index === 0 ? {} : { argv: WAIT_ARGV, stdin: undefined, keep: [], outDir: undefined }),
      };
      const result = await runJob(store, own, index === 0 ? { ...hooks, signal: stopAll.signal } : { signal: stopAll.signal, driver: hooks.driver });
      // VM 0 ending ends the job; any other VM ending first fails it.
      firstToEnd ??= { index, result };
      stopAll.abort();
      return result;
    };
    const results = await Promise.all(Array.from({ length: nodes }, (_, k) => vm(k)));
    const first = firstToEnd!;
    // The VMs vmwu stopped because another ended first did not fail: they were stopped with the job.
    const vms = results.map((r, index) => (index !== first.index && r.status === 'error' && r.error?.code === 'INTERRUPTED'
      ? { index, host: segmentHostName(index), runId: r.id, status: 'stopped' as const, error: `stopped when VM ${first.index} ended` }
      : { index, host: segmentHostName(index), runId: r.id, status: r.status, ...(r.error ? { error: r.error.message } : {}) }));
    const main = results[0]!;
    if (first.index !== 0 && !hooks.signal?.aborted) {
      const why = first.result.error?.message ?? `its VM ended (${first.result.status})`;
      return {
        ...main, status: 'failed', exitCode: null, vms,
        error: { code: 'NODE_FAILED', message: `VM ${first.index} (${segmentHostName(first.index)}) of the job ended before VM 0: ${why}`, hint: 'every VM of the job was stopped; a retry starts them all again' },
      };
    }
    return { ...main, vms };
  } finally {
    hooks.signal?.removeEventListener('abort', onAbort);
    hub.close();
  }
}
