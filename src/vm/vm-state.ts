import { createReadStream, createWriteStream } from 'node:fs';
import { chown, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { VmwuError } from '../errors.js';
import { syncFile } from '../store/durable.js';
import type { QmpClient, QmpEvent } from './qmp.js';
import type { QemuUser } from './qemu-user.js';

/**
 * Saving and loading a VM's device and RAM state with QEMU's migration, over a
 * unix socket vmwu holds the other end of. QEMU 7.2 has no `file:` URI, and
 * `exec:` would need QEMU to fork, which its seccomp sandbox forbids
 * (src/vm/argv.ts QEMU_SANDBOX); fds cannot be handed over QMP from Node.
 */
export interface StateTransfer {
  /** The socket path, in a directory QEMU's user can use (the instance's socket directory). */
  socket: string;
  user?: QemuUser;
  /**
   * RAM that is a shared file stays out of the stream (`x-ignore-shared`): a
   * template's RAM is its memory file. Private RAM, a clone's or a cold VM's, is
   * always in the stream. Both ends must agree.
   */
  ignoreShared: boolean;
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;

async function setCapabilities(qmp: QmpClient, t: StateTransfer): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [
      { capability: 'events', state: true },
      { capability: 'x-ignore-shared', state: t.ignoreShared },
    ],
  });
  // The default cap (128 MiB/s) slows the save of a paused guest threefold.
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 1024 ** 4 });
}

/** Resolves when the migration has completed; rejects with QEMU's reason when it failed. */
function migrationDone(qmp: QmpClient, what: string, timeoutMs: number): Promise<void> {
  const ended = (ev: QmpEvent) => ['completed', 'failed', 'cancelled'].includes(String((ev.data as { status?: string } | undefined)?.status));
  return qmp.waitForEvent('MIGRATION', { filter: ended, timeoutMs }).then(async (ev) => {
    const status = (ev.data as { status: string }).status;
    if (status === 'completed') return;
    const info = await qmp.execute<{ 'error-desc'?: string }>('query-migrate').catch(() => ({} as { 'error-desc'?: string }));
    throw new VmwuError('VM_STATE', `${what} ${status}: ${info['error-desc'] ?? 'QEMU gave no reason'}`);
  });
}

/**
 * Stops the VM (it stays paused) and writes its state to `file`, fsynced. The VM
 * goes on only if the caller says `cont`.
 */
export async function saveVmState(qmp: QmpClient, file: string, t: StateTransfer): Promise<{ bytes: number }> {
  const timeoutMs = t.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  await setCapabilities(qmp, t);
  await qmp.execute('stop');
  await rm(t.socket, { force: true });
  const server = createServer();
  const received = new Promise<number>((resolve, reject) => {
    server.once('connection', (conn: Socket) => {
      server.close();
      const out = createWriteStream(file, { mode: 0o600 });
      let bytes = 0;
      conn.on('data', (d: Buffer) => { bytes += d.length; });
      pipeline(conn, out).then(() => resolve(bytes), reject);
    });
    server.once('error', reject);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(t.socket, () => resolve());
    });
    if (t.user) await chown(t.socket, t.user.uid, t.user.gid);
    const done = migrationDone(qmp, 'saving the VM state', timeoutMs);
    await qmp.execute('migrate', { uri: `unix:${t.socket}` });
    const [bytes] = await Promise.all([received, done]);
    await syncFile(file);
    return { bytes };
  } finally {
    server.close();
    await rm(t.socket, { force: true });
  }
}

/**
 * Loads `file` into a VM started with `incoming` (`-incoming defer`) and the
 * same devices as the one that saved it. The VM stays paused: the caller may
 * resize disks before its `cont`.
 */
export async function loadVmState(qmp: QmpClient, file: string, t: StateTransfer): Promise<void> {
  const timeoutMs = t.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  await setCapabilities(qmp, t);
  await rm(t.socket, { force: true });
  const done = migrationDone(qmp, 'loading the VM state', timeoutMs);
  // QEMU listens once the command returns.
  await qmp.execute('migrate-incoming', { uri: `unix:${t.socket}` });
  const conn = connect(t.socket);
  await new Promise<void>((resolve, reject) => {
    conn.once('connect', () => resolve());
    conn.once('error', reject);
  });
  // A failed load closes the socket early: the write error is QEMU's refusal, which `done` reports.
  const sent = pipeline(createReadStream(file), conn).catch(() => undefined);
  try {
    await done;
  } finally {
    conn.destroy();
    await sent;
  }
}
