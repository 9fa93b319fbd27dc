import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { machinesUnavailable, startMachines, type Machine, type MachinePool } from '../support/netns-machines.js';
import { registerBase, requireBase } from '../../src/store/bases.js';
import { openStore } from '../../src/store/store.js';
import { processesMentioning, root, testHome, tmp, vmwu, waitFor } from '../support/harness.js';

/**
 * A store used from several hosts. Two machines (network, UTS and mount
 * namespaces of their own) each mount one store directory through sshfs, like two
 * NFS clients: they share no locks, page cache or shared memory. SQLite cannot
 * keep a database consistent between them, so vmwu must either record every
 * write or refuse the second host with a clear error, never lose a write
 * silently. And a run of another host (another UTS and PID namespace on this
 * kernel, same store) is that host's: this host must not reap it. Needs root;
 * otherwise skipped loudly.
 */
const skip = machinesUnavailable();
if (skip) process.stderr.write(`\n!!! SKIPPING the shared-store tests: ${skip} !!!\n\n`);

const vmwuJs = join(root, 'bin', 'vmwu.js');
const storeJs = join(root, 'dist', 'src', 'store', 'store.js');

/** A process's output, for a command started in a machine (or here). */
function collect(child: ReturnType<typeof spawn>): { out: () => string; done: Promise<number | null> } {
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { text += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { text += d; });
  return { out: () => text, done: new Promise((r) => child.on('close', (code) => r(code))) };
}

/**
 * N read-increment-write transactions through the store's own code, slowly, so
 * that another host's try falls inside them. Prints "opened" once it holds the store.
 */
const COUNTER = `
const { openStore } = await import(${JSON.stringify(storeJs)});
let s;
try { s = openStore(process.env.VMWU_HOME); } catch (e) { console.log('REFUSED ' + e.code + ': ' + e.message); process.exit(2); }
s.db.exec('CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)');
s.db.prepare('INSERT OR IGNORE INTO counter VALUES (1, 0)').run();
console.log('opened');
for (let i = 0; i < Number(process.env.N); i++) {
  s.db.transaction(() => {
    const n = s.db.prepare('SELECT n FROM counter WHERE id = 1').get().n;
    s.db.prepare('UPDATE counter SET n = ? WHERE id = 1').run(n + 1);
  }).immediate();
  await new Promise((r) => setTimeout(r, 5));
}
s.close();
console.log('done');
`;

/**
 * Writes a row (host, seq, time) into TABLE every 20 ms for FOR_MS through the store's own
 * code, printing "wrote N" once each is committed; waits for a store in use by
 * another host. After row PAUSE_AT it pauses for a second, for the test to stop
 * it between writes: a process stopped inside SQLite's commit is beyond what any
 * lease can guard (docs/executors.md). Exits 3 when a write is refused.
 */
const WRITER = `
const { openStore } = await import(${JSON.stringify(storeJs)});
const { hostname } = await import('node:os');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
console.log('pid ' + process.pid);
let s;
for (const end = Date.now() + 30000; !s;) {
  try { s = openStore(process.env.VMWU_HOME); } catch (e) {
    if (e.code !== 'STORE_IN_USE' || Date.now() > end) { console.log('REFUSED ' + e.code + ': ' + e.message); process.exit(2); }
    await sleep(200);
  }
}
let seq = 0;
try {
  s.db.exec('CREATE TABLE IF NOT EXISTS ' + process.env.TABLE + ' (host TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL)');
  const add = s.db.prepare('INSERT INTO ' + process.env.TABLE + ' VALUES (?, ?, ?)');
  console.log('opened');
  for (const end = Date.now() + Number(process.env.FOR_MS); Date.now() < end;) {
    add.run(hostname(), seq + 1, Date.now());
    console.log('wrote ' + ++seq);
    await sleep(seq === Number(process.env.PAUSE_AT) ? 1000 : 20);
  }
} catch (e) {
  console.log('FAILED ' + e.code + ': ' + e.message);
  process.exitCode = 3;
}
s.close();
console.log('closed');
`;

describe('one store, several hosts', { skip, timeout: 900_000 }, () => {
  const dir = tmp('vmwu-shared-');
  const shared = join(dir, 'store');
  let pool: MachinePool;
  let alpha: Machine;
  let beta: Machine;

  before(async () => {
    // A fresh store holding the tiny base, which the machines mount.
    const from = openStore(testHome());
    const to = openStore(shared);
    try {
      const b = requireBase(from.db, 'tiny');
      for (const d of [b.kernel!, b.initrd!, b.root]) await to.blobs.putFile(from.blobs.path(d));
      registerBase(to.db, { ...b });
    } finally {
      to.close();
      from.close();
    }
    pool = await startMachines(join(dir, 'machines'), { names: ['alpha', 'beta'], share: [shared] });
    [alpha, beta] = pool.machines as [Machine, Machine];
  });

  after(async () => {
    await pool?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('read-increment-write from two mounts: the second host is refused, naming the first; nothing is lost; then it takes its turn', async () => {
    const env = { ...process.env, VMWU_HOME: shared, VMWU_SCRATCH: pool.localPath, N: '300' };
    const a = collect(alpha.spawn(process.execPath, ['--input-type=module', '-e', COUNTER], { env }));
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (a.out().includes('opened')) {
          clearInterval(t);
          r();
        }
      }, 20);
    });
    const b = collect(beta.spawn(process.execPath, ['--input-type=module', '-e', COUNTER], { env }));
    assert.equal(await b.done, 2, b.out());
    assert.match(b.out(), /REFUSED STORE_IN_USE: the store \S+ is in use by host alpha \(since .*, last seen \d+ s ago\)/);
    assert.equal(await a.done, 0, a.out());
    const again = collect(beta.spawn(process.execPath, ['--input-type=module', '-e', COUNTER], { env }));
    assert.equal(await again.done, 0, again.out());
    const db = new Database(join(shared, 'vmwu.db'), { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT n FROM counter').get(), { n: 600 }, 'every increment of both hosts is there');
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      assert.equal(db.pragma('journal_mode', { simple: true }), 'delete', 'no WAL on a network filesystem');
    } finally {
      db.close();
    }
  });

  /**
   * Alpha writes rows, is stopped (SIGSTOP) for longer than the TTL, beta takes the
   * store over and writes, and alpha goes on once `resume(beta)` has resolved: it must
   * refuse to write (STORE_LOST, exit 3), and every row either reported is in the
   * store, alpha's all before beta's first. Returns alpha's output.
   */
  async function stoppedHolder(table: string, resume: (b: ReturnType<typeof collect>) => Promise<unknown>): Promise<string> {
    const env = { ...process.env, VMWU_HOME: shared, VMWU_SCRATCH: pool.localPath, VMWU_STORE_LEASE_TTL_MS: '3000', TABLE: table };
    const a = collect(alpha.spawn(process.execPath, ['--input-type=module', '-e', WRITER], { env: { ...env, FOR_MS: '15000', PAUSE_AT: '20' } }));
    await waitFor('alpha\'s 20th row', () => /^wrote 20$/m.test(a.out()), 60_000);
    const pid = Number(/^pid (\d+)$/m.exec(a.out())![1]);
    process.kill(pid, 'SIGSTOP');
    const b = collect(beta.spawn(process.execPath, ['--input-type=module', '-e', WRITER], { env: { ...env, FOR_MS: '4000' } }));
    try {
      await resume(b);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    assert.equal(await a.done, 3, `alpha refuses to write on: ${a.out()}`);
    assert.equal(await b.done, 0, b.out());
    const wrote = (out: string) => [...out.matchAll(/^wrote (\d+)$/gm)].map((m) => Number(m[1]));
    const db = new Database(join(shared, 'vmwu.db'), { readonly: true });
    try {
      const rows = db.prepare(`SELECT host, seq, at FROM ${table} ORDER BY rowid`).all() as { host: string; seq: number; at: number }[];
      for (const [host, out] of [['alpha', a.out()], ['beta', b.out()]] as const) {
        assert.deepEqual(rows.filter((r) => r.host === host).map((r) => r.seq), wrote(out), `every row ${host} reported is in the store, and no other`);
      }
      assert.ok(wrote(b.out()).length >= 10, b.out());
      const firstBeta = Math.min(...rows.filter((r) => r.host === 'beta').map((r) => r.at));
      assert.deepEqual(rows.filter((r) => r.host === 'alpha' && r.at >= firstBeta), [], 'alpha wrote nothing once beta had begun');
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db.close();
    }
    process.stderr.write(`  (alpha wrote ${wrote(a.out()).length} rows, beta ${wrote(b.out()).length}; alpha: ${a.out().replace(/^wrote.*\n/gm, '').trim().replace(/\n/g, ' | ')})\n`);
    return a.out();
  }

  test('a holder stopped past the TTL writes nothing once another host has had the store: STORE_LOST, and no write lost', async () => {
    const out = await stoppedHolder('ticks_after', (b) => b.done);
    assert.match(out, /^FAILED STORE_LOST: the store \S+ was taken over by another host /m);
  });

  test('a holder stopped past the TTL and let go on while the other host writes: STORE_LOST naming that host, and no write lost', async () => {
    const out = await stoppedHolder('ticks_during', (b) => waitFor('beta\'s 10th row', () => /^wrote 10$/m.test(b.out()), 60_000));
    assert.match(out, /^FAILED STORE_LOST: the store \S+ was taken over by host beta while this process's lease had lapsed/m);
  });

  test('`vmwu run` loops on both hosts at once: every run either recorded, or refused with the holder\'s name', async () => {
    const loop = 'for i in 1 2 3; do "$NODE" "$VMWU_JS" run --base tiny --json -- true; echo "EXIT $?"; done';
    const env = { ...process.env, VMWU_HOME: shared, VMWU_SCRATCH: pool.localPath, NODE: process.execPath, VMWU_JS: vmwuJs };
    const runs = [alpha, beta].map((m) => collect(m.spawn('sh', ['-c', loop], { env })));
    await Promise.all(runs.map((r) => r.done));
    const recorded: string[] = [];
    let refused = 0;
    for (const [i, r] of runs.entries()) {
      const other = i === 0 ? 'beta' : 'alpha';
      const exits = [...r.out().matchAll(/^EXIT (\d+)$/gm)].map((m) => Number(m[1]));
      assert.equal(exits.length, 3, r.out());
      for (const m of r.out().matchAll(/^\{.*?^\}$/gms)) {
        const x = JSON.parse(m[0]) as { id?: string; status: string; error?: { code: string } };
        if (x.id) recorded.push(x.id);
        else assert.equal(x.error?.code, 'STORE_IN_USE', m[0]);
      }
      const refusals = r.out().match(new RegExp(`^vmwu: the store \\S+ is in use by host ${other} \\(`, 'gm'))?.length ?? 0;
      assert.equal(exits.filter((x) => x === 0).length + refusals, 3, `every run of ${i ? 'beta' : 'alpha'} succeeded or was refused: ${r.out()}`);
      assert.equal(exits.filter((x) => x === 125).length, refusals);
      refused += refusals;
    }
    process.stderr.write(`  (${recorded.length} runs recorded, ${refused} refused)\n`);
    const db = new Database(join(shared, 'vmwu.db'), { readonly: true });
    try {
      const rows = db.prepare(`SELECT id, status, owner FROM runs WHERE argv = '["true"]'`).all() as { id: string; status: string; owner: string }[];
      assert.deepEqual(rows.map((x) => x.id).sort(), [...recorded].sort(), 'every run a host reported is in the store');
      for (const x of rows) {
        assert.equal(x.status, 'succeeded');
        assert.match(x.owner, /@(alpha|beta)\//);
      }
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      db.close();
    }
  });
});

describe('a run of another host on this store', { skip: process.getuid?.() === 0 ? false : 'not root (namespaces need root)', timeout: 600_000 }, () => {
  test('survives `vmwu doctor`, `vmwu runs` and a sweep on this host, and finishes', async () => {
    // Another host name and another PID namespace on this kernel, on the same store: its pids mean nothing here.
    const other = `other-${randomBytes(2).toString('hex')}`;
    const child = spawn('unshare', ['--uts', '--pid', '--fork', '--mount-proc', 'sh', '-c',
      `hostname ${other} && exec "${process.execPath}" "${vmwuJs}" run --base tiny --json -- sh -c 'sleep 25; echo survived'`],
    { env: { ...process.env, VMWU_HOME: testHome() }, stdio: ['ignore', 'pipe', 'pipe'] });
    const c = collect(child);
    let runId = '';
    for (let i = 0; i < 600 && !runId; i++) {
      const r = await vmwu(['runs', '--json', '--limit', '50']);
      const mine = (JSON.parse(r.stdout) as { id: string; status: string; owner: string }[]).find((x) => x.owner.includes(`@${other}/`) && x.status === 'running');
      if (mine) runId = mine.id;
      else await new Promise((r2) => setTimeout(r2, 200));
    }
    assert.ok(runId, `the other host's run started: ${c.out()}`);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(processesMentioning(runId).length, 1, 'its QEMU runs');

    const doctor = JSON.parse((await vmwu(['doctor', '--json'])).stdout) as { reapedRuns: string[] };
    assert.ok(!doctor.reapedRuns.includes(runId), 'doctor left it alone');
    const runs = JSON.parse((await vmwu(['runs', '--json', '--limit', '50'])).stdout) as { id: string; status: string }[];
    assert.equal(runs.find((x) => x.id === runId)?.status, 'running');
    const plan = join(tmp('vmwu-other-host-'), 'one.pln');
    writeFileSync(plan, 'parameter i integer range from 1 to 1\ntask main\n    shexec "true"\nendtask\n');
    const sweep = await vmwu(['sweep', plan, '--base', 'tiny', '--name', `other-host-${randomBytes(3).toString('hex')}`, '--memory', '128M']);
    assert.equal(sweep.code, 0, sweep.stderr);
    assert.equal(processesMentioning(runId).length, 1, 'its QEMU still runs after a sweep here');

    assert.equal(await c.done, 0, c.out());
    const result = JSON.parse(c.out().slice(c.out().indexOf('{'))) as { id: string; status: string };
    assert.deepEqual([result.id, result.status], [runId, 'succeeded']);
  });
});
