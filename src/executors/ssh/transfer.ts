import { createReadStream } from 'node:fs';
import { z } from 'zod';
import { isVmwuError } from '../../errors.js';
import type { Db } from '../../store/db.js';
import type { SshConnection } from './connection.js';
import { recordHostBlobs } from './hosts.js';
import { haveSchema, type HaveReply } from './protocol.js';

/**
 * A unit's blobs sent to a pool host by digest: only those it lacks, each from where an interrupted
 * transfer stopped, with what it holds recorded in the store.
 */

export interface BlobToSend {
  digest: string;
  path: string;
  size: number;
}

export interface TransferReport {
  /** Blobs sent now (whole or the rest of an interrupted transfer). */
  sent: { digest: string; bytes: number; resumedAt: number }[];
  /** Blobs the host already had. */
  present: number;
}

const receivedSchema = z.object({ digest: z.string(), size: z.number(), received: z.number() });

/** Asks a host which of these blobs it holds (and how much of the others arrived), and records the answer. */
export async function askHost(conn: SshConnection, db: Db, blobs: BlobToSend[]): Promise<HaveReply> {
  const asked = blobs.map((b) => b.digest);
  const reply = await conn.json(['have', ...asked], haveSchema);
  recordHostBlobs(db, conn.target.name, reply.have, asked);
  return reply;
}

/**
 * Makes a host hold these blobs: asks what it has, sends only the rest, each
 * from where an earlier interrupted transfer stopped. The host hashes every blob
 * on arrival and keeps it only if it matches its digest; a corrupt one is sent
 * once more from the start.
 */
export async function ensureBlobs(conn: SshConnection, db: Db, blobs: BlobToSend[], onSend?: (b: BlobToSend, offset: number) => void): Promise<TransferReport> {
  const host = conn.target.name;
  const reply = await askHost(conn, db, blobs);
  const report: TransferReport = { sent: [], present: reply.have.length };
  const have = new Set(reply.have);
  for (const b of blobs) {
    if (have.has(b.digest)) continue;
    let offset = Math.min(reply.partial[b.digest] ?? 0, b.size);
    for (let tries = 0; ; tries++) {
      onSend?.(b, offset);
      try {
        const r = await conn.json(['receive', b.digest, '--size', String(b.size), '--offset', String(offset)], receivedSchema,
          { stdin: createReadStream(b.path, { start: offset }) });
        report.sent.push({ digest: b.digest, bytes: r.received, resumedAt: offset });
        break;
      } catch (e) {
        // A corrupt arrival was deleted on the host; a stale offset is refused there: start over, once.
        if (tries === 0 && isVmwuError(e) && (e.code === 'BLOB_CORRUPT' || e.code === 'TRANSFER_OFFSET')) {
          offset = 0;
          continue;
        }
        throw e;
      }
    }
    recordHostBlobs(db, host, [b.digest]);
  }
  return report;
}
