/**
 * The life of a multi-VM job's VMs, wherever each runs (this host, SSH pool
 * hosts): all start together; VM 0 runs the command and, when it has ended, its
 * agent releases the others to stage out; one that has not ended by the grace is
 * stopped. A VM that fails while the job runs fails the job: every VM is stopped,
 * and the failure names it. Nothing here knows how a VM runs: `run` does.
 */

/** What of a VM's result decides the job's fate. */
export interface VmEnd {
  status: string;
}

export interface SegmentVmsOutcome<R> {
  results: R[];
  /** The VM whose failure ended the job, if one did. */
  failed?: number;
}

/** How long the other VMs have to stage out and power off once VM 0 has ended. */
export const PEER_GRACE_MS = 60_000;

/** VM 0's command ended (its agent released the others), as opposed to a walltime or an error, after which they are stopped at once. */
const released = (status: string) => status === 'succeeded' || status === 'failed';

export async function runSegmentVms<R extends VmEnd>(n: number, run: (k: number, signal: AbortSignal) => Promise<R>, o: { signal?: AbortSignal; graceMs?: number } = {}): Promise<SegmentVmsOutcome<R>> {
  // VM 0 and the job stop together; each other VM can also be stopped alone (once VM 0 has ended, after the grace).
  const stopAll = new AbortController();
  const stopPeer = Array.from({ length: n }, () => new AbortController());
  const onAbort = () => stopAll.abort();
  o.signal?.addEventListener('abort', onAbort);
  if (o.signal?.aborted) stopAll.abort();
  let failed: number | undefined;
  let grace: NodeJS.Timeout | undefined;
  try {
    const settled = await Promise.allSettled(Array.from({ length: n }, async (_, k) => {
      const signal = k === 0 ? stopAll.signal : AbortSignal.any([stopAll.signal, stopPeer[k]!.signal]);
      let r: R;
      try {
        r = await run(k, signal);
      } catch (e) {
        // A VM that could not be run at all fails the job like one that failed running.
        if (failed === undefined && !stopAll.signal.aborted) failed = k;
        stopAll.abort();
        throw e;
      }
      if (k === 0) {
        if (released(r.status)) grace = setTimeout(() => stopPeer.forEach((c) => c.abort()), o.graceMs ?? PEER_GRACE_MS);
        else stopPeer.forEach((c) => c.abort());
      } else if (r.status !== 'succeeded' && !signal.aborted) {
        failed ??= k;
        stopAll.abort();
      }
      return r;
    }));
    // Every VM has ended (none is left running) before an error is passed on.
    const thrown = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (thrown) throw thrown.reason;
    const results = settled.map((x) => (x as PromiseFulfilledResult<R>).value);
    return { results, ...(failed !== undefined ? { failed } : {}) };
  } finally {
    clearTimeout(grace);
    o.signal?.removeEventListener('abort', onAbort);
  }
}
