import { chmod, rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { z } from 'zod';
import { VmwuError } from '../errors.js';
import type { CheckpointRecord } from './checkpoint/format.js';

/**
 * The socket a running job's vmwu takes requests on (`vmwu checkpoint`): one
 * JSON line in, one JSON line out. Only this user may connect (mode 0600: not
 * QEMU's user, whose directory it sits in).
 */

export interface InstanceControl {
  checkpoint(o: { stop: boolean }): Promise<CheckpointRecord>;
}

const requestSchema = z.object({ op: z.literal('checkpoint'), stop: z.boolean() });
export type ControlRequest = z.infer<typeof requestSchema>;
type ControlReply = { ok: true; checkpoint: CheckpointRecord } | { ok: false; code: string; message: string; hint?: string };

const MAX_REQUEST = 4096;

export async function serveRunControl(path: string, control: () => InstanceControl | undefined): Promise<Server> {
  await rm(path, { force: true });
  const server = createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => undefined);
    conn.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_REQUEST) {
        conn.destroy();
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl >= 0) void answer(buf.slice(0, nl)).then((r) => conn.end(JSON.stringify(r) + '\n'));
    });
  });
  const answer = async (line: string): Promise<ControlReply> => {
    try {
      const req = requestSchema.parse(JSON.parse(line));
      const c = control();
      if (!c) return { ok: false, code: 'NOT_RUNNING', message: 'the job is not running yet, or any more' };
      return { ok: true, checkpoint: await c.checkpoint({ stop: req.stop }) };
    } catch (e) {
      const ve = e instanceof VmwuError ? e : undefined;
      return { ok: false, code: ve?.code ?? 'INTERNAL', message: (e as Error).message, ...(ve?.hint ? { hint: ve.hint } : {}) };
    }
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  server.unref();
  return server;
}

/** Sends one request to a running job's vmwu and waits for its answer. */
export async function requestRunControl(path: string, req: ControlRequest, timeoutMs = 300_000): Promise<CheckpointRecord> {
  const conn = connect(path);
  let reply = '';
  const text = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { conn.destroy(); reject(new VmwuError('CONTROL_TIMEOUT', `no answer from the job's vmwu within ${timeoutMs} ms`)); }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify(req) + '\n'));
    conn.on('data', (d: string) => { reply += d; });
    conn.on('end', () => { clearTimeout(timer); resolve(reply); });
    conn.on('error', (e) => {
      clearTimeout(timer);
      reject(new VmwuError('NOT_RUNNING', `cannot reach the job's vmwu at ${path}: ${e.message}`, 'is the run still running on this host? (`vmwu ps`)'));
    });
  });
  const r = JSON.parse(text) as ControlReply;
  if (!r.ok) throw new VmwuError(r.code, r.message, r.hint);
  return r.checkpoint;
}
