import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { VmwuError } from '../../../src/errors.js';
import { QmpClient, QmpError, type QmpEvent } from '../../../src/vm/qmp.js';

const GREETING = {
  QMP: {
    version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'fake 1.0' },
    capabilities: ['oob'],
  },
};

interface Command {
  execute: string;
  arguments?: Record<string, unknown>;
  id?: unknown;
}

/** The QEMU side of a connection: reads commands, writes replies and events. */
class FakeQemu {
  private buffered = '';
  private readonly lines: string[] = [];
  private readonly waiters: ((line: string) => void)[] = [];

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffered += text;
      for (let nl = this.buffered.indexOf('\n'); nl !== -1; nl = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const waiter = this.waiters.shift();
        if (waiter) waiter(line);
        else this.lines.push(line);
      }
    });
    // The client going away mid-test is expected in several tests.
    socket.on('error', () => {});
  }

  async next(): Promise<Command> {
    const line = this.lines.shift() ?? (await new Promise<string>((resolve) => this.waiters.push(resolve)));
    return JSON.parse(line) as Command;
  }

  /** Read the next command, check its name, and return it. */
  async expect(execute: string): Promise<Command> {
    const cmd = await this.next();
    assert.equal(cmd.execute, execute);
    return cmd;
  }

  send(message: unknown): void {
    this.socket.write(JSON.stringify(message) + '\r\n');
  }

  reply(cmd: Command, value: unknown = {}): void {
    this.send({ return: value, id: cmd.id });
  }

  /** One byte per write, yielding in between so the client sees as many chunks as possible. */
  async trickle(text: string): Promise<void> {
    for (const byte of Buffer.from(text, 'utf8')) {
      await new Promise<void>((resolve, reject) => this.socket.write(Buffer.of(byte), (err) => (err ? reject(err) : resolve())));
      await nextTurn();
    }
  }

  async greetAndNegotiate(): Promise<void> {
    this.send(GREETING);
    this.reply(await this.expect('qmp_capabilities'));
  }
}

let dir: string;
let counter = 0;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vmwu-qmp-unit-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function socketPath(): string {
  return path.join(dir, `s${counter++}.sock`);
}

/** Listen on a fresh unix socket; `accepted` yields the first connection as a FakeQemu. */
async function listen(t: TestContext, where = socketPath()): Promise<{ path: string; accepted: Promise<FakeQemu> }> {
  const server = net.createServer();
  let fake: FakeQemu | undefined;
  const accepted = new Promise<FakeQemu>((resolve) =>
    server.once('connection', (s) => {
      fake = new FakeQemu(s);
      resolve(fake);
    }),
  );
  await new Promise<void>((resolve) => server.listen(where, resolve));
  // server.close() is not awaited: it completes only once every connection is gone.
  t.after(() => {
    fake?.socket.destroy();
    server.close();
  });
  return { path: where, accepted };
}

/** A client connected to a FakeQemu that has completed the handshake. */
async function connected(t: TestContext, options: { maxLineBytes?: number } = {}): Promise<{ client: QmpClient; fake: FakeQemu }> {
  const { path: where, accepted } = await listen(t);
  const clientP = QmpClient.connect(where, { timeoutMs: 10_000, ...options });
  const fake = await accepted;
  const [client] = await Promise.all([clientP, fake.greetAndNegotiate()]);
  t.after(() => client.close());
  return { client, fake };
}

function collectEvents(client: QmpClient): QmpEvent[] {
  const events: QmpEvent[] = [];
  client.on('event', (e) => events.push(e));
  return events;
}

function hasCode(code: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof VmwuError, `expected a VmwuError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

describe('QmpClient handshake', () => {
  it('reads the greeting, negotiates capabilities and returns the version', async (t) => {
    const { path: where, accepted } = await listen(t);
    const clientP = QmpClient.connect(where, { timeoutMs: 10_000 });
    const fake = await accepted;
    fake.send(GREETING);
    const negotiate = await fake.expect('qmp_capabilities');
    assert.equal(negotiate.arguments, undefined);
    assert.equal(typeof negotiate.id, 'number');
    fake.reply(negotiate);
    const client = await clientP;
    t.after(() => client.close());
    assert.deepEqual(client.greeting, {
      version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'fake 1.0' },
      capabilities: ['oob'],
    });
    assert.equal(await client.handshake(), client.greeting?.version, 'handshake() is idempotent');
  });

  it('retries while the socket does not exist yet', async (t) => {
    const where = socketPath();
    const clientP = QmpClient.connect(where, { timeoutMs: 10_000 });
    // Let connect() fail at least once with ENOENT before anything listens.
    await nextTurn();
    const { accepted } = await listen(t, where);
    await (await accepted).greetAndNegotiate();
    const client = await clientP;
    t.after(() => client.close());
    assert.equal(client.greeting?.version.qemu.major, 7);
  });

  it('gives up with QMP_CONNECT_TIMEOUT when nothing ever listens', async () => {
    await assert.rejects(QmpClient.connect(socketPath(), { timeoutMs: 30 }), hasCode('QMP_CONNECT_TIMEOUT'));
  });

  it('stops retrying when the signal aborts', async () => {
    const ac = new AbortController();
    const p = QmpClient.connect(socketPath(), { timeoutMs: 10_000, signal: ac.signal });
    ac.abort();
    await assert.rejects(p, hasCode('QMP_ABORTED'));
  });

  it('rejects execute() before the handshake', async (t) => {
    const { path: where } = await listen(t);
    const socket = net.connect(where);
    const client = QmpClient.fromSocket(socket);
    t.after(() => client.close());
    await assert.rejects(client.execute('query-status'), hasCode('QMP_NOT_READY'));
  });

  it('times out the handshake when no greeting comes', async (t) => {
    const { path: where, accepted } = await listen(t);
    const clientP = QmpClient.connect(where, { timeoutMs: 20 });
    await accepted;
    await assert.rejects(clientP, (err) => {
      assert.ok(err instanceof VmwuError && err.code === 'QMP_TIMEOUT', String(err));
      assert.match(err.message, /greeting/);
      assert.match(err.hint ?? '', /another one connected/);
      return true;
    });
  });

  it('fails the handshake when the peer closes before greeting', async (t) => {
    const { path: where, accepted } = await listen(t);
    const clientP = QmpClient.connect(where, { timeoutMs: 10_000 });
    (await accepted).socket.end();
    await assert.rejects(clientP, hasCode('QMP_CLOSED'));
  });

  it('fails the handshake on a malformed greeting', async (t) => {
    const { path: where, accepted } = await listen(t);
    const clientP = QmpClient.connect(where, { timeoutMs: 10_000 });
    (await accepted).send({ QMP: { version: 'seven' } });
    await assert.rejects(clientP, hasCode('QMP_PROTOCOL'));
  });
});

describe('QmpClient.execute', () => {
  it('sends name, arguments and id, and resolves with the return value', async (t) => {
    const { client, fake } = await connected(t);
    const result = client.execute<{ status: string }>('query-status', { verbose: true });
    const cmd = await fake.expect('query-status');
    assert.deepEqual(cmd.arguments, { verbose: true });
    fake.reply(cmd, { status: 'running', running: true });
    assert.deepEqual(await result, { status: 'running', running: true });
  });

  it('omits "arguments" when there are none', async (t) => {
    const { client, fake } = await connected(t);
    const result = client.execute('stop');
    const cmd = await fake.expect('stop');
    assert.ok(!('arguments' in cmd));
    fake.reply(cmd);
    assert.deepEqual(await result, {});
  });

  it('rejects with QmpError carrying class and desc', async (t) => {
    const { client, fake } = await connected(t);
    const result = client.execute('nope');
    const cmd = await fake.expect('nope');
    fake.send({ id: cmd.id, error: { class: 'CommandNotFound', desc: 'The command nope has not been found' } });
    await assert.rejects(result, (err) => {
      assert.ok(err instanceof QmpError);
      assert.ok(err instanceof VmwuError);
      assert.equal(err.code, 'QMP_COMMAND_FAILED');
      assert.equal(err.errorClass, 'CommandNotFound');
      assert.equal(err.desc, 'The command nope has not been found');
      assert.equal(err.command, 'nope');
      assert.match(err.message, /nope.*CommandNotFound/);
      return true;
    });
    // The connection survives a command error.
    const next = client.execute('query-status');
    fake.reply(await fake.expect('query-status'), { status: 'paused' });
    assert.deepEqual(await next, { status: 'paused' });
  });

  it('matches out-of-order replies by id', async (t) => {
    const { client, fake } = await connected(t);
    const first = client.execute('query-migrate');
    const second = client.execute('query-status');
    const third = client.execute('query-name');
    const c1 = await fake.expect('query-migrate');
    const c2 = await fake.expect('query-status');
    const c3 = await fake.expect('query-name');
    assert.equal(new Set([c1.id, c2.id, c3.id]).size, 3, 'ids are distinct');
    fake.reply(c3, { name: 'three' });
    fake.send({ id: c1.id, error: { class: 'GenericError', desc: 'one failed' } });
    fake.reply(c2, { status: 'two' });
    assert.deepEqual(await third, { name: 'three' });
    assert.deepEqual(await second, { status: 'two' });
    await assert.rejects(first, (err) => err instanceof QmpError && err.desc === 'one failed');
  });

  it('attributes a reply without id to the oldest pending command', async (t) => {
    const { client, fake } = await connected(t);
    const first = client.execute('deep');
    const second = client.execute('query-status');
    await fake.expect('deep');
    const c2 = await fake.expect('query-status');
    fake.send({ error: { class: 'GenericError', desc: 'JSON parse error, too deep' } });
    fake.reply(c2, 'ok');
    await assert.rejects(first, (err) => err instanceof QmpError && err.command === 'deep');
    assert.equal(await second, 'ok');
  });

  it('times out, drops the late reply, and keeps working', async (t) => {
    const { client, fake } = await connected(t);
    const slow = client.execute('slow', undefined, { timeoutMs: 20 });
    const cmd = await fake.expect('slow');
    await assert.rejects(slow, hasCode('QMP_TIMEOUT'));
    fake.reply(cmd, 'too late');
    const next = client.execute('query-status');
    fake.reply(await fake.expect('query-status'), 'fresh');
    assert.equal(await next, 'fresh');
  });

  it('does not send a command whose signal is already aborted, and rejects on abort', async (t) => {
    const { client, fake } = await connected(t);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(client.execute('never-sent', undefined, { signal: ac.signal }), hasCode('QMP_ABORTED'));
    const ac2 = new AbortController();
    const waiting = client.execute('abandoned', undefined, { signal: ac2.signal });
    await fake.expect('abandoned');
    ac2.abort();
    await assert.rejects(waiting, hasCode('QMP_ABORTED'));
    const next = client.execute('query-status');
    // 'never-sent' must not appear before this.
    fake.reply(await fake.expect('query-status'), 'ok');
    assert.equal(await next, 'ok');
  });
});

describe('QmpClient framing and events', () => {
  it('delivers events interleaved with replies, split byte by byte', async (t) => {
    const { client, fake } = await connected(t);
    const events = collectEvents(client);
    const result = client.execute('system_reset');
    const reset = client.waitForEvent('RESET', { timeoutMs: 10_000 });
    const cmd = await fake.expect('system_reset');
    const stream =
      JSON.stringify({ timestamp: { seconds: 1, microseconds: 2 }, event: 'STOP' }) +
      '\r\n\r\n' +
      JSON.stringify({ return: { note: 'réinitialisé ✓' }, id: cmd.id }) +
      '\r\n  \n' +
      JSON.stringify({ timestamp: { seconds: 3, microseconds: 4 }, event: 'RESET', data: { guest: false, reason: 'host-qmp-system-reset' } }) +
      '\r\n';
    await fake.trickle(stream);
    assert.deepEqual(await result, { note: 'réinitialisé ✓' });
    await reset;
    assert.deepEqual(events, [
      { event: 'STOP', data: {}, timestamp: { seconds: 1, microseconds: 2 } },
      { event: 'RESET', data: { guest: false, reason: 'host-qmp-system-reset' }, timestamp: { seconds: 3, microseconds: 4 } },
    ]);
  });

  it('handles several messages in one chunk and a message split across chunks', async (t) => {
    const { client, fake } = await connected(t);
    const events = collectEvents(client);
    const a = client.execute('a');
    const b = client.execute('b');
    const ca = await fake.expect('a');
    const cb = await fake.expect('b');
    const shutdown = client.waitForEvent('SHUTDOWN', { timeoutMs: 10_000 });
    const all =
      JSON.stringify({ event: 'RESUME', timestamp: { seconds: 5, microseconds: 0 } }) +
      '\n' +
      JSON.stringify({ return: 'A', id: ca.id }) +
      '\n' +
      JSON.stringify({ return: 'B', id: cb.id }) +
      '\n' +
      JSON.stringify({ event: 'SHUTDOWN', data: { guest: true, reason: 'guest-shutdown' }, timestamp: { seconds: 6, microseconds: 0 } }) +
      '\n';
    const cut = all.indexOf('"B"') + 1;
    fake.socket.write(all.slice(0, cut));
    await nextTurn();
    fake.socket.write(all.slice(cut));
    assert.equal(await a, 'A');
    assert.equal(await b, 'B');
    assert.deepEqual((await shutdown).data, { guest: true, reason: 'guest-shutdown' });
    assert.deepEqual(
      events.map((e) => e.event),
      ['RESUME', 'SHUTDOWN'],
    );
  });

  it('waitForEvent honours filter and times out', async (t) => {
    const { client, fake } = await connected(t);
    const completed = client.waitForEvent('MIGRATION', {
      timeoutMs: 10_000,
      filter: (e) => e.data.status === 'completed',
    });
    for (const status of ['setup', 'active', 'completed']) {
      fake.send({ event: 'MIGRATION', data: { status }, timestamp: { seconds: 0, microseconds: 0 } });
    }
    assert.deepEqual((await completed).data, { status: 'completed' });
    await assert.rejects(client.waitForEvent('NEVER', { timeoutMs: 10 }), hasCode('QMP_TIMEOUT'));
    assert.equal(client.listenerCount('event'), 0, 'waiters remove their listeners');
  });

  // The cap must exceed the fake greeting (about 120 bytes).
  const cap = 200;

  it('closes the connection on an over-long line', async (t) => {
    const { client, fake } = await connected(t, { maxLineBytes: cap });
    const pending = client.execute('query-status');
    await fake.expect('query-status');
    // No newline: the cap must hold for a line that never ends, too.
    fake.socket.write('{"return": "' + 'x'.repeat(cap));
    await assert.rejects(pending, (err) => {
      assert.ok(err instanceof VmwuError && err.code === 'QMP_PROTOCOL', String(err));
      assert.match(err.message, /longer than 200 bytes.*query-status/);
      return true;
    });
    const why = await client.closed;
    assert.ok(why instanceof VmwuError && why.code === 'QMP_PROTOCOL', String(why));
    assert.equal(client.isClosed, true);
  });

  it('accepts a line exactly at the cap', async (t) => {
    const { client, fake } = await connected(t, { maxLineBytes: cap });
    const pending = client.execute('q');
    const cmd = await fake.expect('q');
    const prefix = JSON.stringify({ id: cmd.id, return: '' }).slice(0, -2);
    const payload = 'y'.repeat(cap - prefix.length - 2);
    assert.equal((prefix + payload + '"}').length, cap);
    await fake.trickle(prefix + payload + '"}\n');
    assert.equal(await pending, payload);
  });

  it('closes the connection on a line that is not JSON', async (t) => {
    const { client, fake } = await connected(t);
    const pending = client.execute('query-status');
    await fake.expect('query-status');
    fake.socket.write('{this is not json\n');
    await assert.rejects(pending, hasCode('QMP_PROTOCOL'));
    assert.equal((await client.closed as VmwuError).code, 'QMP_PROTOCOL');
  });
});

describe('QmpClient closing', () => {
  it('rejects pending commands and waits when the peer closes', async (t) => {
    const { client, fake } = await connected(t);
    const closeEvents: (Error | undefined)[] = [];
    client.on('close', (e) => closeEvents.push(e));
    const pending = client.execute('query-status');
    const waiting = client.waitForEvent('SHUTDOWN');
    await fake.expect('query-status');
    fake.socket.destroy();
    await assert.rejects(pending, (err) => {
      assert.ok(err instanceof VmwuError && err.code === 'QMP_CLOSED');
      assert.match(err.message, /query-status/);
      return true;
    });
    await assert.rejects(waiting, hasCode('QMP_CLOSED'));
    assert.equal(await client.closed, undefined, 'a clean EOF is not an error');
    assert.deepEqual(closeEvents, [undefined]);
    assert.equal(client.isClosed, true);
    await assert.rejects(client.execute('query-status'), hasCode('QMP_CLOSED'));
    await assert.rejects(client.waitForEvent('STOP'), hasCode('QMP_CLOSED'));
  });

  it('quit resolves when QEMU closes before replying', async (t) => {
    const { client, fake } = await connected(t);
    const quitting = client.quit();
    await fake.expect('quit');
    fake.socket.destroy();
    await quitting;
    await client.closed;
  });

  it('quit resolves when QEMU replies and then closes', async (t) => {
    const { client, fake } = await connected(t);
    const shutdown = client.waitForEvent('SHUTDOWN');
    const quitting = client.quit();
    const cmd = await fake.expect('quit');
    fake.send({ event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' }, timestamp: { seconds: 0, microseconds: 0 } });
    fake.reply(cmd);
    fake.socket.end();
    await quitting;
    assert.equal((await shutdown).data.reason, 'host-qmp-quit');
    await client.closed;
  });

  it('closeIsSuccess works for any command', async (t) => {
    const { client, fake } = await connected(t);
    const p = client.execute('system_powerdown', undefined, { closeIsSuccess: true });
    await fake.expect('system_powerdown');
    fake.socket.destroy();
    assert.equal(await p, undefined);
  });

  it('quit does not count a protocol failure as success', async (t) => {
    const { client, fake } = await connected(t);
    const quitting = client.quit();
    await fake.expect('quit');
    fake.socket.write('garbage\n');
    await assert.rejects(quitting, hasCode('QMP_PROTOCOL'));
  });

  it('close() rejects pending commands, including quit', async (t) => {
    const { client, fake } = await connected(t);
    const pending = client.execute('query-status');
    const quitting = client.quit();
    await fake.expect('query-status');
    await fake.expect('quit');
    const outcomes = Promise.all([
      assert.rejects(pending, (err) => err instanceof VmwuError && err.code === 'QMP_CLOSED' && /by the caller/.test(err.message)),
      assert.rejects(quitting, hasCode('QMP_CLOSED')),
    ]);
    await client.close();
    await outcomes;
    assert.equal(await client.closed, undefined);
    await client.close();
  });
});

describe('QmpClient.fromSocket with QEMU as the connecting side', () => {
  it('accepts the connection, handshakes, executes and quits', async (t) => {
    const where = socketPath();
    const server = net.createServer();
    const incoming = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(where, resolve));
    // Not awaited: close() only completes once the accepted connection is gone.
    t.after(() => void server.close());

    // The fake QEMU dials in, as `-chardev socket,path=...` (no server=on) does.
    const qemuSide = net.connect(where);
    t.after(() => qemuSide.destroy());
    const fake = new FakeQemu(qemuSide);
    await new Promise((resolve) => qemuSide.once('connect', resolve));
    fake.send(GREETING);

    const client = QmpClient.fromSocket(await incoming);
    t.after(() => client.close());
    const fakeSession = (async () => {
      fake.reply(await fake.expect('qmp_capabilities'));
      fake.reply(await fake.expect('query-status'), { status: 'prelaunch', running: false });
      await fake.expect('quit');
      fake.socket.end();
    })();

    const version = await client.handshake({ timeoutMs: 10_000 });
    assert.deepEqual(version.qemu, { major: 7, minor: 2, micro: 22 });
    assert.deepEqual(await client.execute('query-status'), { status: 'prelaunch', running: false });
    await client.quit();
    await fakeSession;
    await client.closed;
  });
});
