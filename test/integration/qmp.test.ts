import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { QmpClient, QmpError } from '../../src/vm/qmp.js';

const QEMU = 'qemu-system-x86_64';
// A machine with no guest: QEMU starts in milliseconds and only serves the monitor.
const BASE_ARGS = ['-M', 'none', '-nodefaults', '-display', 'none'];
// Safety nets only; nothing here is expected to come close.
const TEST_TIMEOUT_MS = 60_000;
const WAIT_MS = 30_000;

interface Qemu {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Aborts when QEMU exits, so waits on it fail at once instead of timing out. */
  gone: AbortSignal;
  stderr: () => string;
}

function startQemu(t: TestContext, args: string[]): Qemu {
  const child = spawn(QEMU, [...BASE_ARGS, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const ac = new AbortController();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', (err) => {
      ac.abort(err);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      ac.abort(new Error(`${QEMU} exited (code ${code}, signal ${signal}): ${stderr.trim()}`));
      resolve({ code, signal });
    });
  });
  // Also marks the rejection as handled when the test never awaits `exited`.
  exited.catch(() => {});
  // Runs even when an assertion fails, so no QEMU outlives its test.
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited.catch(() => {});
    }
  });
  return { child, exited, gone: ac.signal, stderr: () => stderr };
}

let dir: string;

before(async () => {
  try {
    execFileSync(QEMU, ['--version'], { stdio: 'ignore' });
  } catch (err) {
    throw new Error(`${QEMU} is not runnable (${(err as Error).message}); the QMP integration tests need QEMU >= 7 on PATH`, {
      cause: err,
    });
  }
  dir = await mkdtemp(path.join(os.tmpdir(), 'vmwu-qmp-int-'));
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('QmpClient against a real QEMU', { timeout: TEST_TIMEOUT_MS }, () => {
  it('QEMU as QMP server: version, status, events, errors, quit', async (t) => {
    const sock = path.join(dir, 'q.sock');
    const qemu = startQemu(t, ['-qmp', `unix:${sock},server=on,wait=off`]);

    const client = await QmpClient.connect(sock, { timeoutMs: WAIT_MS, signal: qemu.gone });
    t.after(() => client.close());
    assert.ok(client.greeting, 'greeting recorded');
    assert.ok(client.greeting.version.qemu.major >= 7, `greeting says QEMU ${JSON.stringify(client.greeting.version)}`);

    const version = await client.execute<{ qemu: { major: number; minor: number; micro: number }; package: string }>(
      'query-version',
    );
    assert.ok(version.qemu.major >= 7, `query-version says ${JSON.stringify(version)}`);
    assert.deepEqual(version.qemu, client.greeting.version.qemu);

    const status = await client.execute<{ status: string; running: boolean }>('query-status');
    assert.equal(typeof status.status, 'string');
    assert.equal(typeof status.running, 'boolean');

    const stopped = client.waitForEvent('STOP', { timeoutMs: WAIT_MS });
    await client.execute('stop');
    await stopped;
    assert.deepEqual(await client.execute('query-status'), { ...status, status: 'paused', running: false });

    const resumed = client.waitForEvent('RESUME', { timeoutMs: WAIT_MS });
    await client.execute('cont');
    await resumed;

    const reset = client.waitForEvent('RESET', { timeoutMs: WAIT_MS });
    await client.execute('system_reset');
    assert.equal((await reset).data.guest, false);

    await assert.rejects(client.execute('no-such-command'), (err) => {
      assert.ok(err instanceof QmpError, String(err));
      assert.equal(err.errorClass, 'CommandNotFound');
      assert.match(err.desc, /no-such-command/);
      return true;
    });
    await assert.rejects(client.execute('query-status', { bogus: 1 }), (err) => err instanceof QmpError);

    // QEMU emits SHUTDOWN from its main loop before it tears the monitor down, so the
    // event arrives even though the socket closes right after.
    const shutdown = client.waitForEvent('SHUTDOWN', { timeoutMs: WAIT_MS });
    await client.quit({ timeoutMs: WAIT_MS });
    assert.equal((await shutdown).data.reason, 'host-qmp-quit');
    const exit = await qemu.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, qemu.stderr());
    await client.closed;
    assert.equal(client.isClosed, true);
  });

  it('QEMU as QMP client: accept its connection, fromSocket, handshake, quit', async (t) => {
    const sock = path.join(dir, 'c.sock');
    const server = net.createServer();
    // Not awaited: close() only completes once QEMU's connection is gone, and that is up
    // to the other cleanup hooks.
    t.after(() => void server.close());
    const incoming = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(sock, resolve));

    const qemu = startQemu(t, ['-chardev', `socket,id=qmp,path=${sock}`, '-mon', 'chardev=qmp,mode=control']);
    const socket = await Promise.race([
      incoming,
      qemu.exited.then(() => Promise.reject(new Error(`${QEMU} exited before connecting: ${qemu.stderr()}`))),
    ]);

    const client = QmpClient.fromSocket(socket);
    t.after(() => client.close());
    // QEMU makes exactly one connection; stop accepting more.
    server.close();
    const version = await client.handshake({ timeoutMs: WAIT_MS, signal: qemu.gone });
    assert.ok(version.qemu.major >= 7, JSON.stringify(version));

    const status = await client.execute<{ status: string }>('query-status');
    assert.equal(typeof status.status, 'string');

    await client.quit({ timeoutMs: WAIT_MS });
    assert.deepEqual(await qemu.exited, { code: 0, signal: null }, qemu.stderr());
    await client.closed;
  });
});
