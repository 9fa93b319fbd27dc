import { statSync } from 'node:fs';
import { formatBytes } from '../../quantities.js';
import { requireBase, type Base } from '../../store/bases.js';
import type { Store } from '../../store/store.js';
import type { Experiment } from '../../sweep/records/types.js';
import type { SshConnection } from './connection.js';
import type { JobNeeds } from './placement.js';
import type { HostStats } from './pool-host.js';
import { okSchema } from './protocol.js';
import { ensureBlobs, type BlobToSend } from './transfer.js';

/** What of a sweep's unit travels to the pool's hosts: its blobs by digest, what a host must have to take its jobs, and the sending of it, once per host. */

export interface UnitCargo {
  base: Base;
  blobs: BlobToSend[];
  needs: JobNeeds;
}

/** The blobs a host must hold to run a target: the base's kernel, initrd and root, and the unit's layers. */
export function unitBlobs(store: Store, base: Base, layers: string[]): BlobToSend[] {
  const digests = [base.kernel, base.initrd, base.root, ...layers].filter((d): d is NonNullable<typeof d> => Boolean(d));
  return [...new Set(digests)].map((d) => {
    const path = store.blobs.path(d as Base['root']);
    return { digest: d, path, size: statSync(path).size };
  });
}

export function unitCargo(store: Store, e: Pick<Experiment, 'target' | 'resources'>): UnitCargo {
  const base = requireBase(store.db, e.target.base);
  // Datasets travel like layers: by digest, once per host.
  const blobs = unitBlobs(store, base, [...e.target.layers, ...(e.resources.datasets ?? []).map((d) => d.digest)]);
  const needs = { arch: base.arch, memoryMiB: e.resources.memoryMiB, needBytes: blobs.reduce((a, b) => a + b.size, 0), ...(e.resources.cpuNeeds ? { cpu: e.resources.cpuNeeds } : {}) };
  return { base, blobs, needs };
}

/** Sends the host the blobs it lacks and registers the base there; counted in the host's stats. */
export async function sendUnit(store: Store, cargo: UnitCargo, conn: SshConnection, stats: HostStats, info: (m: string) => void): Promise<void> {
  const host = conn.target.name;
  const report = await ensureBlobs(conn, store.db, cargo.blobs, (b, offset) =>
    info(`host ${host}: sending blob ${b.digest.slice(7, 19)} (${formatBytes(b.size - offset)}${offset ? `, resuming at ${formatBytes(offset)}` : ''})`));
  for (const s of report.sent) {
    stats.blobsSent++;
    stats.blobBytes += s.bytes;
  }
  await conn.json(['register-base'], okSchema, { stdin: Buffer.from(JSON.stringify(cargo.base)) });
}
