import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVmwuError, VmwuError } from '../../../../src/errors.js';
import { HostLostError, type ExecResult } from '../../../../src/executors/ssh/connection.js';
import type { HostRecord } from '../../../../src/executors/ssh/hosts.js';
import { parseSelector } from '../../../../src/executors/ssh/placement.js';
import type { PoolConnection } from '../../../../src/executors/ssh/pool-host.js';
import { SshPool } from '../../../../src/executors/ssh/pool.js';
import { ERROR_MARK, REMOTE_PROTOCOL, type RemoteInfo } from '../../../../src/executors/ssh/protocol.js';
import type { AttemptResult, Executor } from '../../../../src/sweep/driver.js';
import { listAttempts } from '../../../../src/sweep/records/reads.js';
import { runExperiment } from '../../../../src/sweep/runner.js';
import { storeWithExperiment } from '../../../support/fake-experiment.js';

/** The pool without SSH: connections are fakes that record what they were asked and answer with `reply`. */
class FakeConnection implements PoolConnection {
  alive = true;
  sentBytes = 0;
  readonly asked: string[][] = [];
  constructor(private readonly reply: (args: string[]) => ExecResult) {}
  async exec(args: string[]): Promise<ExecResult> {
    this.asked.push(args);
    return this.reply(args);
  }
  close(): void {
    this.alive = false;
  }
}

const ok: ExecResult = { code: 0, stdout: Buffer.from('{}'), stderr: '' };
const remoteError = (code: string, message: string): ExecResult => ({ code: 125, stdout: Buffer.alloc(0), stderr: `${ERROR_MARK}${JSON.stringify({ code, message })}\n` });

const info = (over: Partial<RemoteInfo> = {}): RemoteInfo => ({
  protocol: REMOTE_PROTOCOL, version: '0.1.0', qemu: '7.2', arch: 'x86_64', cores: 2, memMiB: 4096, availableMemMiB: 4096, store: '/s', freeBytes: 1e12, ...over,
});

const host = (name: string, over: Partial<HostRecord> = {}): HostRecord => ({
  name, user: 'u', address: name, port: 22, keyPath: null, slots: 1, labels: {}, hostKey: 'k', fingerprint: 'f', vmwu: 'vmwu', store: null,
  info: info(), addedAt: 'then', checkedAt: 'then', drainedAt: null, ...over,
});

const NEED = 1000;
const succeeded: AttemptResult = { runId: null, status: 'succeeded', exitCode: 0, phases: null, totalMs: 1 };
const tick = () => new Promise((r) => setTimeout(r, 5));

/** A pool of these hosts; `down` names those that cannot be reached, `facts` what a reachable host says of itself, `held` what it holds of the unit. */
function makePool(hosts: HostRecord[], o: { held?: Record<string, number>; facts?: Record<string, RemoteInfo>; reply?: (host: string, args: string[]) => ExecResult } = {}) {
  let t = 1_000_000;
  const down = new Map<string, Error>();
  const said: string[] = [];
  const conns = new Map<string, FakeConnection[]>();
  const pool = new SshPool<FakeConnection>({
    hosts, needs: { arch: 'x86_64', memoryMiB: 256, needBytes: NEED }, selector: parseSelector(undefined), jobCpus: 1, retryDownMs: 60_000,
    heldBytes: (name) => o.held?.[name] ?? 0, onInfo: (m) => said.push(m), now: () => t,
    connect: async (r, learned) => {
      const why = down.get(r.name);
      if (why) throw why;
      learned(o.facts?.[r.name] ?? r.info);
      const c = new FakeConnection((args) => o.reply?.(r.name, args) ?? ok);
      conns.set(r.name, [...(conns.get(r.name) ?? []), c]);
      return c;
    },
  });
  return { pool, down, said, conns, later: (ms: number) => (t += ms) };
}

test('placement spreads attempts over the hosts: the holder of the unit first, then free slots; a slot is taken before any wait and given back at the end', async () => {
  const { pool } = makePool([host('a', { slots: 1 }), host('b', { slots: 2 })], { held: { b: NEED } });
  await pool.open(async () => undefined);
  const signal = new AbortController().signal;
  const got: string[] = [];
  const gates: (() => void)[] = [];
  const attempt = () => pool.runPlaced(signal, async (h) => {
    got.push(h.record.name);
    await new Promise<void>((r) => gates.push(r));
    return succeeded;
  });
  const runs = [attempt(), attempt(), attempt(), attempt()];
  await tick();
  assert.deepEqual(got, ['b', 'b', 'a'], 'b holds the unit: filled first; the fourth waits for a slot');
  assert.deepEqual([...pool.hosts.values()].map((h) => [h.record.name, h.busy]), [['a', 1], ['b', 2]]);
  gates[2]!();
  await tick();
  assert.deepEqual(got, ['b', 'b', 'a', 'a'], 'the freed slot is taken at once');
  for (const g of gates) g();
  assert.deepEqual((await Promise.all(runs)).map((r) => r.status), ['succeeded', 'succeeded', 'succeeded', 'succeeded']);
  assert.deepEqual([...pool.hosts.values()].map((h) => h.busy), [0, 0], 'every slot given back');
  pool.close();
});

test('slots: a host\'s --slots, else the capacity rule on the cores and free memory it reports now; a host that cannot be reached is down', async () => {
  const { pool, down, said } = makePool([host('a', { slots: null, info: info({ cores: 1 }) }), host('b', { slots: 5 }), host('c', { slots: null })], {
    facts: { a: info({ cores: 4, availableMemMiB: 1000 }) },
  });
  down.set('c', new VmwuError('HOST_KEY_CHANGED', 'host c presented another key'));
  const probed: number[] = [];
  await pool.open(async () => {
    probed.push(1);
  });
  const [a, b, c] = [...pool.hosts.values()];
  assert.equal(a!.slots, 3, 'min(4 cores, floor(0.8 × 1000 MiB / 256 MiB)): from what the host says now, not its record');
  assert.equal(b!.slots, 5);
  assert.equal(c!.slots, 2, 'from its record: 2 cores');
  assert.equal(probed.length, 2, 'the reachable hosts are asked what they hold');
  assert.equal(c!.downWhy, 'host c presented another key');
  assert.deepEqual(pool.facts().map((f) => [f.name, f.up, f.slots]), [['a', true, 3], ['b', true, 5], ['c', false, 2]]);
  assert.deepEqual(said, ['warning: host c presented another key']);
  pool.close();
});

test('a host lost under an attempt: the attempt ends interrupted, the host stays out of placement for its pause, then is tried again', async () => {
  const { pool, said, conns, later } = makePool([host('a'), host('b')]);
  await pool.open(async () => undefined);
  const signal = new AbortController().signal;
  const lost = await pool.runPlaced(signal, async (h) => {
    const conn = await pool.connect(h);
    conn.sentBytes = 100;
    throw new HostLostError(h.record.name, 'no keepalive reply');
  });
  assert.equal(lost.status, 'interrupted');
  assert.deepEqual(lost.error, { code: 'HOST_LOST', message: 'host a was lost: no keepalive reply' });
  const a = pool.hosts.get('a')!;
  assert.deepEqual([a.busy, a.stats.lost, a.conn, a.downWhy], [0, 1, null, 'host a was lost: no keepalive reply']);
  assert.equal(conns.get('a')![0]!.alive, false, 'its connection is closed');
  assert.deepEqual(said, ['host a was lost: no keepalive reply; its jobs go to the other hosts']);
  const where = () => pool.runPlaced(signal, async (h) => {
    await pool.connect(h);
    return { ...succeeded, runId: h.record.name };
  });
  assert.equal((await where()).runId, 'b', 'a is out of placement');
  later(60_000);
  assert.equal((await where()).runId, 'a', 'its pause is over: tried again');
  assert.equal(said.at(-1), 'host a is back');
  assert.equal(pool.stats().find((s) => s.host === 'a')!.sentBytes, 100, 'bytes sent on the lost connection still count');
  pool.close();
});

test('every host down: each is tried at once, and the attempt fails with NO_HOSTS if none answers', async () => {
  const { pool, down } = makePool([host('a'), host('b')]);
  await pool.open(async () => undefined);
  for (const h of pool.hosts.values()) pool.markDown(h, 'gone');
  down.set('a', new Error('connect ECONNREFUSED'));
  down.set('b', new Error('connect ETIMEDOUT'));
  const signal = new AbortController().signal;
  await assert.rejects(pool.runPlaced(signal, async () => succeeded),
    (e: unknown) => isVmwuError(e) && e.code === 'NO_HOSTS' && e.message === 'no host can run the job: a: connect ECONNREFUSED; b: connect ETIMEDOUT');
  down.delete('b');
  assert.equal((await pool.runPlaced(signal, async (h) => ({ ...succeeded, runId: h.record.name }))).runId, 'b', 'b answers again: placed there');
  pool.close();
});

test('a lost host\'s jobs go back to pending, uncounted, and finish on the other host, each exactly once', async () => {
  const { store } = await storeWithExperiment('lost', 4);
  const { pool } = makePool([host('a'), host('b')]);
  await pool.open(async () => undefined);
  let lostOnce = false;
  const executor: Executor = {
    name: 'pool', capacity: async () => ({ slots: 2, explain: 'two hosts' }),
    runAttempt: (_s, ctx) => pool.runPlaced(ctx.signal, async (h) => {
      ctx.onPlaced?.(h.record.name);
      await tick();
      if (h.record.name === 'a' && !lostOnce) {
        lostOnce = true;
        throw new HostLostError('a', 'no keepalive reply');
      }
      return succeeded;
    }),
    close: async () => pool.close(),
  };
  const r = await runExperiment(store, 'lost', { executor, pollMs: 5, backoff: { baseMs: 5, capMs: 20 } });
  assert.equal(r.state, 'succeeded', 'retries 0, yet the lost attempt failed no job');
  const attempts = listAttempts(store.db, 'lost');
  const lost = attempts.filter((x) => x.status === 'interrupted');
  assert.equal(lost.length, 1);
  assert.equal(lost[0]!.host, 'a');
  assert.match(lost[0]!.error!, /HOST_LOST: host a was lost/);
  assert.deepEqual(attempts.filter((x) => x.status === 'succeeded').map((x) => x.job).sort(), [1, 2, 3, 4]);
  assert.deepEqual(attempts.filter((x) => x.status === 'succeeded').map((x) => x.host), ['b', 'b', 'b', 'b'], 'a stays out for its pause');
  store.close();
});

test('a drained host is skipped by placement and its running jobs are asked to stop at a checkpoint; one still starting is asked again', async () => {
  let starting = true;
  const { pool, said, conns } = makePool([host('a'), host('b')], {
    reply: (_h, args) => (args[1] === 'j1' && starting ? remoteError('NOT_RUNNING', 'job j1 is not running yet') : args[1] === 'j2' ? remoteError('BROKEN', 'no control socket') : ok),
  });
  await pool.open(async () => undefined);
  const a = pool.hosts.get('a')!;
  a.jobs.set('j1', { stopAsked: false });
  await pool.applyDrains(new Set(['a']));
  assert.equal(a.drained, true);
  assert.deepEqual(conns.get('a')![0]!.asked, [['checkpoint', 'j1', '--stop']]);
  assert.equal(a.jobs.get('j1')!.stopAsked, false, 'not running yet: asked again on the next look');
  starting = false;
  a.jobs.set('j2', { stopAsked: false });
  await pool.applyDrains(new Set(['a']));
  await pool.applyDrains(new Set(['a']));
  assert.deepEqual(conns.get('a')![0]!.asked.slice(1), [['checkpoint', 'j1', '--stop'], ['checkpoint', 'j2', '--stop'], ['checkpoint', 'j2', '--stop']], 'j1 is asked once more, then left to stop');
  assert.equal(a.jobs.get('j1')!.stopAsked, true);
  assert.deepEqual(said, [
    'host a is drained: its running jobs stop at a checkpoint and go on elsewhere',
    'host a is drained, but job j2 could not be checkpointed: host a: no control socket',
    'host a is drained, but job j2 could not be checkpointed: host a: no control socket',
  ]);
  const signal = new AbortController().signal;
  const at = (await pool.runPlaced(signal, async (h) => ({ ...succeeded, runId: h.record.name }))).runId;
  assert.equal(at, 'b', 'placement skips the drained host');
  // Every host drained: jobs wait, said once, until one is put back.
  await pool.applyDrains(new Set(['a', 'b']));
  let placed: string | null = null;
  const waiting = pool.runPlaced(signal, async (h) => ({ ...succeeded, runId: (placed = h.record.name) }));
  await tick();
  assert.equal(placed, null);
  assert.equal(said.filter((m) => m.startsWith('every host of the sweep is drained')).length, 1);
  await pool.applyDrains(new Set(['a']));
  assert.equal((await waiting).runId, 'b');
  assert.equal(said.at(-1), 'host b is back in the pool');
  pool.close();
});

test('the unit goes to a host once per connection, however many attempts start together; a failed send is tried again', async () => {
  const { pool } = makePool([host('a', { slots: 3 })]);
  await pool.open(async () => undefined);
  const a = pool.hosts.get('a')!;
  let sends = 0;
  let fail = true;
  const prepare = async () => {
    sends++;
    await tick();
    if (fail) throw new Error('transfer cut off');
  };
  await assert.rejects(pool.ready(a, prepare), /transfer cut off/);
  fail = false;
  await Promise.all([pool.ready(a, prepare), pool.ready(a, prepare), pool.ready(a, prepare)]);
  assert.equal(sends, 2, 'once after the failure, for three attempts');
  pool.markDown(a, 'lost');
  await pool.ready(a, prepare);
  assert.equal(sends, 3, 'a new connection: sent (or checked) again');
  pool.close();
});

test('drains are watched from the store on a timer until the pool closes', async () => {
  const { pool, said } = makePool([host('a'), host('b')]);
  await pool.open(async () => undefined);
  let drained = new Set<string>();
  pool.watchDrains(() => drained, 5);
  drained = new Set(['b']);
  await tick();
  await tick();
  assert.equal(pool.hosts.get('b')!.drained, true);
  pool.close();
  drained = new Set();
  await tick();
  await tick();
  assert.equal(pool.hosts.get('b')!.drained, true, 'closed: no more looks');
  assert.deepEqual(said, ['host b is drained: its running jobs stop at a checkpoint and go on elsewhere']);
  assert.equal(await pool.place(new AbortController().signal), null, 'a closed pool places nothing');
});
