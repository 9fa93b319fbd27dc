import { spawn } from 'node:child_process';
import { closeSync, openSync, statSync } from 'node:fs';
import { chown, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { VmwuError } from '../errors.js';
import { syncFile } from '../store/durable.js';
import type { QmpClient, QmpEvent } from './qmp.js';
import type { QemuUser } from './qemu-user.js';

/**
 * Saving and loading a VM's device and RAM state with QEMU's migration. QEMU 7.2
 * has no `file:` URI, and `exec:` would need QEMU to fork, which its seccomp
 * sandbox forbids (src/vm/argv.ts QEMU_SANDBOX). A save goes over a unix socket
 * into a capped `dd > FILE` (Node cannot hand QEMU an fd over QMP); a load reads the file
 * from an fd QEMU was started with.
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
  /**
   * The most a save may write: its RAM and some device state. QEMU writes the
   * stream, and a QEMU a guest took over must not fill the store's disk.
   */
  maxBytes: number;
  timeoutMs?: number;
}

/** What a saved state may hold beyond the guest's RAM: device state and per-page headers. */
export function stateCap(memoryMiB: number): number {
  return (memoryMiB + 64) * 1024 ** 2;
}

const DEFAULT_TIMEOUT_MS = 120_000;

async function setCapabilities(qmp: QmpClient, t: Pick<StateTransfer, 'ignoreShared'>): Promise<void> {
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
  // dd moves the stream, not Node (a JS copy loop halves the speed of a large
  // save; head -c copies 8 KiB at a time), and stops past the cap: a longer stream is refused.
  const received = new Promise<number>((resolve, reject) => {
    server.once('connection', (conn: Socket) => {
      server.close();
      const fd = openSync(file, 'w', 0o600);
      const copier = spawn('dd', ['bs=1M', 'iflag=fullblock', `count=${Math.floor(t.maxBytes / 1024 ** 2) + 1}`, 'status=none'], { stdio: [conn, fd, 'pipe'] });
      closeSync(fd);
      conn.destroy();
      let err = '';
      copier.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
      copier.once('error', reject);
      copier.once('close', (code) => {
        const size = statSync(file).size;
        if (size > t.maxBytes) reject(new VmwuError('VM_STATE', `the VM's saved state passed ${t.maxBytes} bytes, more than its RAM could hold: refused`));
        else if (code === 0) resolve(size);
        else reject(new VmwuError('VM_STATE', `writing ${file} failed: ${err.trim() || `dd exit ${code}`}`));
      });
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

/** The fd a VM started with `incoming` reads its saved state from (src/vm/launch.ts). */
export const INCOMING_FD = 3;

/**
 * Loads the saved state into a VM started with `incoming` (`-incoming defer`, the
 * state file open on INCOMING_FD) and the same devices as the one that saved it.
 * The VM stays paused: the caller may resize disks before its `cont`.
 */
export async function loadVmState(qmp: QmpClient, t: Pick<StateTransfer, 'ignoreShared' | 'timeoutMs'>): Promise<void> {
  await setCapabilities(qmp, t);
  const done = migrationDone(qmp, 'loading the VM state', t.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  await qmp.execute('migrate-incoming', { uri: `fd:${INCOMING_FD}` });
  await done;
}
