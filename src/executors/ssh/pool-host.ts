import type { ExecResult } from './connection.js';
import type { HostRecord } from './hosts.js';
import type { RemoteInfo } from './protocol.js';

/** One host of the SSH pool as a sweep's runner holds it: its record, its connection, its slots and jobs, and what it did. */

/** What the pool needs of a connection to a host: an SshConnection, or a fake in unit tests. */
export interface PoolConnection {
  readonly alive: boolean;
  /** Bytes written to the host so far. */
  readonly sentBytes: number;
  exec(args: string[]): Promise<ExecResult>;
  close(): void;
}

/** Opens a checked connection to a host (src/executors/ssh/connect-host.ts), telling `learned` what the host says of itself as soon as it has said it. */
export type Connector<C> = (host: HostRecord, learned: (info: RemoteInfo) => void) => Promise<C>;

export interface HostStats {
  sentBytes: number;
  blobsSent: number;
  blobBytes: number;
  jobs: number;
  lost: number;
}

export interface SshStats extends HostStats {
  host: string;
}

/** One host of the pool, with this runner's state of it. */
export interface PoolHost<C> {
  readonly record: HostRecord;
  conn: C | null;
  connecting: Promise<C> | null;
  info: RemoteInfo;
  slots: number;
  busy: number;
  /** Until when a lost or unreachable host stays out of placement; 0: up. */
  downUntil: number;
  downWhy: string | null;
  /** The unit's blobs and base on this host, once per connection. */
  unitReady: Promise<void> | null;
  /** `vmwu hosts drain`: no jobs are placed here, and the running ones are stopped at a checkpoint and move. */
  drained: boolean;
  /** Our jobs running there now (remote job ids), and whether each was asked to stop at a checkpoint. */
  jobs: Map<string, { stopAsked: boolean }>;
  stats: HostStats;
}

/** A host of the pool before anything is known of it this sweep: not connected, no slots yet, drained if the store says so. */
export function poolHost<C>(r: HostRecord): PoolHost<C> {
  return {
    record: r, conn: null, connecting: null, info: r.info, slots: 0, busy: 0, downUntil: 0, downWhy: null, unitReady: null,
    drained: r.drainedAt !== null, jobs: new Map(), stats: { sentBytes: 0, blobsSent: 0, blobBytes: 0, jobs: 0, lost: 0 },
  };
}
