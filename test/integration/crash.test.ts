import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { fixtures, processesMentioning, startCli, testHome, tmp, vmwu, type CliResult } from '../support/harness.js';

/**
 * vmwu killed with SIGKILL at random points of each operation that writes the
 * store: base build, unit build (boots a VM), bundle import, sweep (boots VMs) and
 * gc. After each kill `vmwu doctor --check` must find the store consistent (temp
 * files and dead owners' records are allowed: the check classifies them as
 * leftovers the next run clears), and a retry of the operation must succeed.
 *
 * The delays are drawn from a seeded generator: the seed is printed, and
 * VMWU_CRASH_SEED=<seed> draws the same delays again. Each operation first runs
 * once unkilled, which measures how long it takes (delays are drawn over that
 * span) and makes what the next operation needs. A kill that comes after the
 * process had already exited is not counted; another delay is drawn.
 *
 * Kill points per operation: the cheap ones more, the ones that boot VMs fewer.
 */
const KILLS = { 'base build': 7, import: 17, gc: 17, build: 5, sweep: 5 };

const seed = Number(process.env.VMWU_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
/** mulberry32: a small seeded generator, enough to reproduce the delays. */
let state = seed >>> 0;
function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

interface KillRecord { op: string; delayMs: number; where: string }
const kills: KillRecord[] = [];
const stores: string[] = [];

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}, signal ${r.signal}):\n${r.stderr}\n${r.stdout}`);
  return r;
}

interface CheckJson { ok: boolean; problems: { kind: string; message: string }[]; leftovers: { kind: string; subject: string }[] }

/** doctor --check must pass, and every leftover must be one it knows (no stray). */
async function assertConsistent(home: string, when: string): Promise<CheckJson> {
  const r = await vmwu(['doctor', '--check', '--json'], { VMWU_HOME: home });
  const j = JSON.parse(r.stdout) as CheckJson;
  assert.equal(r.code, 0, `${when}: doctor --check found problems:\n${j.problems.map((p) => `${p.kind}: ${p.message}`).join('\n')}`);
  assert.equal(j.ok, true);
  assert.deepEqual(j.leftovers.filter((l) => l.kind === 'stray'), [], `${when}: files the check cannot classify`);
  return j;
}

/** Runs a command once, unkilled, and returns how long it took. */
async function timed(args: string[], home: string, what: string): Promise<number> {
  const t0 = Date.now();
  ok(await vmwu(args, { VMWU_HOME: home }), what);
  return Date.now() - t0;
}

/** Where a killed operation had got to, from what it left: work dirs in tmp/, blobs, and its last line of output. */
function whereKilled(home: string, output: string): string {
  const list = (d: string) => (existsSync(d) ? readdirSync(d) : []);
  const tmpDirs = list(join(home, 'tmp')).map((n) => `${n.replace(/-.*/, '')}(${list(join(home, 'tmp', n)).filter((f) => f !== '.owner').length})`);
  const blobs = list(join(home, 'blobs', 'sha256'));
  const temps = blobs.filter((n) => n.startsWith('.tmp-')).length;
  const last = output.trim().split('\n').pop()?.slice(0, 80) ?? '';
  return `tmp: ${tmpDirs.join(' ') || '-'}; blobs: ${blobs.length - temps}${temps ? ` + ${temps} being written` : ''}${last ? `; last output: ${last}` : ''}`;
}

/**
 * Kills `args` after a delay drawn over [start, span] (start: what a command takes to
 * load, span: what the unkilled operation took), KILLS[op] times (kills that came
 * too late are drawn again); after each, the store must check, and `retry` must succeed.
 */
async function killLoop(t: TestContext, op: keyof typeof KILLS, start: number, span: number, o: {
  home: () => string; args: (i: number) => string[]; before?: (i: number) => Promise<void> | void; retry: (i: number) => Promise<void>;
}): Promise<void> {
  let done = 0;
  // A command that finished before its kill shows how long it really takes here: later draws stay inside that.
  let [lo, hi] = [start, Math.max(start, span)];
  for (let i = 1; done < KILLS[op] && i <= KILLS[op] * 3; i++) {
    await o.before?.(i);
    const home = o.home();
    const delay = Math.round(lo + random() * (hi - lo));
    const { child, done: ended } = startCli(o.args(i), { VMWU_HOME: home });
    const t0 = Date.now();
    const timer = setTimeout(() => child.kill('SIGKILL'), delay);
    const r = await ended;
    clearTimeout(timer);
    if (r.signal !== 'SIGKILL') {
      hi = Math.min(hi, Date.now() - t0);
      lo = Math.min(lo, Math.round(hi * 0.6));
      ok(r, `${op} #${i} (finished before its kill at ${delay} ms)`);
    } else {
      done++;
      const where = whereKilled(home, `${r.stdout}${r.stderr}`);
      kills.push({ op, delayMs: delay, where });
      t.diagnostic(`${op}: killed at ${delay} ms: ${where}`);
      await assertConsistent(home, `after killing ${op} at ${delay} ms (seed ${seed})`);
    }
    await o.retry(i);
    await assertConsistent(home, `after retrying ${op} #${i}`);
  }
  assert.equal(done, KILLS[op], `${op}: ${done} kills landed while it ran`);
}

const work = tmp('vmwu-crash-');
/** The store of base builds, unit builds and sweeps. */
const main = join(work, 'store');
const bundle = join(work, 'crashunit.vmwu');

/** A copy of the tiny-crash unit whose build is new (not a cache hit). */
function unitCopy(i: number): string {
  const dir = join(work, `unit-${i}`);
  cpSync(join(fixtures, 'specs', 'tiny-crash'), dir, { recursive: true });
  writeFileSync(join(dir, 'app', 'iteration'), `${i}\n`);
  return dir;
}

/** What a command takes before it does anything: node, the CLI and the store opened. */
async function startup(home: string): Promise<number> {
  const t0 = Date.now();
  ok(await vmwu(['units', '--json'], { VMWU_HOME: home }), 'units');
  return Math.round((Date.now() - t0) * 0.8);
}

describe('crash consistency: SIGKILL at random points, then doctor --check and a retry', { concurrency: false, timeout: 900_000 }, () => {
  after(() => {
    for (const s of stores) assert.deepEqual(processesMentioning(s), [], `no QEMU of ${s} is left`);
  });

  test('base build', async (t) => {
    t.diagnostic(`seed ${seed} (VMWU_CRASH_SEED=${seed} draws the same delays)`);
    stores.push(main);
    // The Debian packages a base build downloads, as the shared test store has them: no network needed.
    mkdirSync(join(main, 'cache'), { recursive: true });
    cpSync(join(testHome(), 'cache', 'debs'), join(main, 'cache', 'debs'), { recursive: true });
    const span = await timed(['base', 'build', 'tiny'], main, 'base build');
    await killLoop(t, 'base build', await startup(main), span, {
      home: () => main, args: () => ['base', 'build', 'tiny'],
      retry: async () => { ok(await vmwu(['base', 'build', 'tiny'], { VMWU_HOME: main }), 'base build retry'); },
    });
  });

  test('unit build (boots a VM)', async (t) => {
    let last = 0;
    const span = await timed(['build', unitCopy(0), '-q'], main, 'build');
    await killLoop(t, 'build', await startup(main), span, {
      home: () => main, args: (i) => ['build', unitCopy(i), '-q'],
      retry: async (i) => {
        last = i;
        ok(await vmwu(['build', join(work, `unit-${i}`), '-q'], { VMWU_HOME: main }), 'build retry');
        const show = JSON.parse(ok(await vmwu(['unit', 'show', 'crashunit', '--json'], { VMWU_HOME: main }), 'unit show').stdout) as { chain: string[]; layers: { digest: string }[] };
        assert.equal(show.chain.length, 1, 'the unit is registered on its layer');
        assert.deepEqual(show.layers.map((l) => l.digest), show.chain);
      },
    });
    const r = ok(await vmwu(['run', 'crashunit', '--json'], { VMWU_HOME: main }), 'run of the last rebuilt unit');
    assert.equal(readFileSync(join((JSON.parse(r.stdout) as { outDir: string }).outDir, 'stdout'), 'utf8'), `${last}\n`, 'the unit runs with the layer its build made');
    ok(await vmwu(['export', 'crashunit', '--with-base', '-o', bundle], { VMWU_HOME: main }), 'export');
  });

  test('import', async (t) => {
    let home = '';
    // Each import goes into a store of its own (20 MiB each, boots nothing), checked after the kill and after the retry.
    const mine: string[] = [];
    const fresh = () => {
      home = join(tmp('vmwu-crash-import-'), 'store');
      mine.push(home);
    };
    fresh();
    const span = await timed(['import', bundle], home, 'import');
    await killLoop(t, 'import', await startup(home), span, {
      before: fresh, home: () => home, args: () => ['import', bundle],
      retry: async () => {
        const r = JSON.parse(ok(await vmwu(['import', bundle, '--json'], { VMWU_HOME: home }), 'import retry').stdout) as { unit: string; blobs: { total: number } };
        assert.equal(r.unit, 'crashunit:1.0.0');
        assert.equal(r.blobs.total, 4);
      },
    });
    for (const s of mine) rmSync(join(s, '..'), { recursive: true, force: true });
  });

  test('gc', async (t) => {
    const home = join(tmp('vmwu-crash-gc-'), 'store');
    stores.push(home);
    const blobs = join(home, 'blobs', 'sha256');
    const hexes = () => readdirSync(blobs).filter((n) => /^[0-9a-f]{64}$/.test(n));
    /** Garbage for gc: the unit and base removed, 2,500 more unused blobs, all older than gc's grace period. */
    const litter = async () => {
      ok(await vmwu(['import', bundle], { VMWU_HOME: home }), 'import');
      ok(await vmwu(['rm', 'crashunit'], { VMWU_HOME: home }), 'rm');
      ok(await vmwu(['base', 'rm', 'tiny'], { VMWU_HOME: home }), 'base rm');
      for (let k = 0; k < 2500; k++) {
        const body = `garbage ${k} ${random()}`;
        writeFileSync(join(blobs, createHash('sha256').update(body).digest('hex')), body);
      }
      const old = new Date(Date.now() - 3_600_000);
      for (const n of hexes()) utimesSync(join(blobs, n), old, old);
      // The layer's row keeps its bundle's creation time, older than the grace period too.
    };
    await litter();
    // Kills are drawn between what gc takes to plan (a dry run) and to finish: mostly while it removes.
    const start = await timed(['gc', '--dry-run'], home, 'gc --dry-run');
    const span = await timed(['gc'], home, 'gc');
    assert.deepEqual(hexes(), []);
    await killLoop(t, 'gc', start, span, {
      before: litter, home: () => home, args: () => ['gc'],
      retry: async () => {
        ok(await vmwu(['gc'], { VMWU_HOME: home }), 'gc retry');
        assert.deepEqual(hexes(), [], 'the retry removed all the garbage');
      },
    });
  });

  test('sweep (boots VMs)', async (t) => {
    const plan = join(fixtures, 'sweeps', 'small.pln');
    const results = (name: string) => join(main, 'experiments', name, 'results');
    const span = await timed(['sweep', plan, '--base', 'tiny', '--name', 'crash-0', '--slots', '2'], main, 'sweep');
    await killLoop(t, 'sweep', await startup(main), span, {
      home: () => main, args: (i) => ['sweep', plan, '--base', 'tiny', '--name', `crash-${i}`, '--slots', '2'],
      retry: async (i) => {
        const name = `crash-${i}`;
        // Killed before the experiment was recorded, the retry is the sweep itself; after, it is a resume.
        const known = (await vmwu(['status', name, '--json'], { VMWU_HOME: main })).code === 0;
        ok(await vmwu(known ? ['resume', name] : ['sweep', plan, '--base', 'tiny', '--name', name, '--slots', '2'], { VMWU_HOME: main }), `sweep ${name} retry`);
        const st = JSON.parse(ok(await vmwu(['status', name, '--json'], { VMWU_HOME: main }), 'status').stdout) as { state: string; counts: { succeeded: number } };
        assert.deepEqual([st.state, st.counts.succeeded], ['succeeded', 3]);
        for (const j of [1, 2, 3]) assert.equal(readFileSync(join(results(name), `out-${j}.txt`), 'utf8'), `${j}\n`);
      },
    });
  });

  test('every store passes a deep check at the end; summary', async (t) => {
    for (const s of stores.filter(existsSync)) {
      const r = await vmwu(['doctor', '--check', '--deep'], { VMWU_HOME: s });
      assert.equal(r.code, 0, r.stdout);
    }
    const byOp = new Map<string, number[]>();
    for (const k of kills) byOp.set(k.op, [...(byOp.get(k.op) ?? []), k.delayMs]);
    for (const [op, ds] of byOp) t.diagnostic(`${op}: ${ds.length} kills at ${ds.sort((a, b) => a - b).join(', ')} ms`);
    t.diagnostic(`${kills.length} kill points in all, seed ${seed}`);
    assert.ok(kills.length >= 50);
  });
});
