import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { gatherPeerOutputs, nodeFailure, PEER_WAIT_ARGV, segmentToken, vmOutcome } from '../../run/multi-vm.js';
import { inSegmentDir } from '../../run/segment-dir.js';
import { runSegmentVms } from '../../run/segment-vms.js';
import type { Store } from '../../store/store.js';
import type { AttemptContext, AttemptResult } from '../../sweep/driver.js';
import { prepareLaunch } from '../../sweep/job-launch.js';
import { startSegmentHub } from '../../vm/segment-hub.js';
import { HostLostError, type SshConnection } from './connection.js';
import type { PoolHost } from './pool-host.js';
import type { SshPool } from './pool.js';
import { runRemoteAttempt } from './remote-attempt.js';
import { sendUnit, type UnitCargo } from './unit-cargo.js';

/**
 * A multi-VM job on the SSH pool: each VM a `vmwu remote run` on a host of its
 * own (`--spread`) or wherever slots are free, all placed at once. The job's hub
 * runs here, in the submitter: each host's sshd listens on a socket of a random
 * name there (0600, the login user's) and forwards what that VM's link sends back
 * over the SSH connection vmwu authenticated, to the hub's port for that VM. So
 * the VMs of the job are on one segment across the hosts, and nothing else is:
 * the hub takes one connection per VM, and has no port anywhere else.
 */

export interface SshMultiVm {
  store: Store;
  ctx: AttemptContext;
  pool: SshPool<SshConnection>;
  cargo: UnitCargo;
  nodes: number;
  /** `--spread`: every VM on a different host. */
  apart: boolean;
  outputsAll: boolean;
  info(message: string): void;
}

const interrupted = (message: string): AttemptResult => ({ runId: null, status: 'interrupted', exitCode: null, phases: null, totalMs: null, error: { code: 'HOST_LOST', message } });

export async function runSshMultiVm(o: SshMultiVm): Promise<AttemptResult> {
  const { store, ctx, pool, nodes } = o;
  const hosts = await pool.placeVms(ctx.signal, nodes, o.apart);
  if (!hosts) return interrupted('stopped before it was placed');
  ctx.onPlaced?.(hosts[0]!.record.name);
  try {
    return await inSegmentDir(store.paths.root, (dir) => onHosts(o, hosts, dir));
  } catch (err) {
    if (!(err instanceof HostLostError)) throw err;
    const h = hosts.find((x) => x.record.name === err.host);
    if (h) {
      h.stats.lost++;
      if (!h.downUntil) o.info(`${err.message}; its jobs go to the other hosts`);
      pool.markDown(h, err.message);
    }
    return interrupted(err.message);
  } finally {
    pool.releaseVms(hosts);
  }
}

async function onHosts(o: SshMultiVm, hosts: PoolHost<SshConnection>[], dir: string): Promise<AttemptResult> {
  const { store, ctx, pool, cargo, nodes } = o;
  // Nothing on this host connects to it: each VM's end arrives by its host's forward.
  const hub = await startSegmentHub(dir, nodes);
  const stopForwards: (() => void)[] = [];
  const outDirOf = (k: number) => (k === 0 ? ctx.outDir : `${ctx.outDir}.node-${k}`);
  try {
    const conns = await Promise.all(hosts.map((h) => pool.ready(h, (x) => sendUnit(store, cargo, x, h.stats, o.info)).catch((err: unknown) => {
      throw err instanceof HostLostError ? err : new HostLostError(h.record.name, (err as Error).message);
    })));
    const links = hosts.map(() => `/tmp/vmwu-segment-${randomBytes(16).toString('hex')}.sock`);
    for (const [k, conn] of conns.entries()) stopForwards.push(await conn.forwardUnixSocket(links[k]!, (s) => hub.attach(k, s)));
    const token = segmentToken();
    const launch = prepareLaunch(ctx);
    const { results, failed } = await runSegmentVms(nodes, (k, signal) => runRemoteAttempt({
      store, ctx: { ...ctx, signal }, host: hosts[k]!, conn: conns[k]!, base: cargo.base, info: o.info,
      vm: { launch: k === 0 ? launch : { ...launch, argv: PEER_WAIT_ARGV, script: undefined }, outDir: outDirOf(k), segment: { index: k, size: nodes, token, link: links[k]! } },
    }), { signal: ctx.signal });
    const vms = results.map((r, k) => vmOutcome(k, hosts[k]!.record.name, r.runId, r, failed));
    const main = { ...results[0]!, vms };
    if (failed === undefined || ctx.signal.aborted) return main;
    const f = results[failed]!;
    // A VM whose host was lost: the job goes back to pending, as any job of a lost host does.
    if (f.status === 'interrupted') return { ...main, status: 'interrupted', error: { code: 'HOST_LOST', message: `VM ${failed}: ${f.error?.message ?? 'its host was lost'}` } };
    return { ...main, ...nodeFailure(failed, f) };
  } finally {
    for (const stop of stopForwards) stop();
    hub.close();
    const peers = Array.from({ length: nodes - 1 }, (_, i) => outDirOf(i + 1));
    if (o.outputsAll) gatherPeerOutputs(ctx.outDir, peers);
    for (const p of peers) rmSync(p, { recursive: true, force: true });
  }
}
