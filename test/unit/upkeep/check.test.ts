import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, truncateSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { runGc } from '../../../src/upkeep/gc.js';
import { insertRun, finishRun } from '../../../src/run/records.js';
import { processStartTime, selfIdentity } from '../../../src/store/process-identity.js';
import { registerBase } from '../../../src/store/bases.js';
import { digestString, hexOf, type Digest } from '../../../src/store/blobs.js';
import { checkStore, recordWhole, type CheckReport } from '../../../src/upkeep/check.js';
import { putSetting } from '../../../src/store/db.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { makeWorkDir, scanStoreTemps, WORK_DIR_OWNER } from '../../../src/store/temp-files.js';
import { createExperiment } from '../../../src/sweep/experiment.js';
import { insertLayer, upsertUnit, type UnitManifest } from '../../../src/unit/records.js';
import { repoRoot } from '../../support/fixture-path.js';

/** An identity whose process cannot be alive: no such pid on this host. */
const DEAD = `4194000:1@${selfIdentity().split('@')[1]}`;

interface Fixture { store: Store; dir: string; root: Digest; layer: Digest; unitDigest: Digest }

/** A store with a base (a real, standalone qcow2 root), one layer over it (qcow2, backed by the root's name) and a unit on it. */
async function fixture(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'vmwu-check-'));
  const store = openStore(join(dir, 'store'));
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'root.qcow2'), '1M']);
  const root = (await store.blobs.putFile(join(dir, 'root.qcow2'), { move: true })).digest;
  writeFileSync(join(dir, 'vmlinuz'), 'a kernel');
  writeFileSync(join(dir, 'initrd'), 'an initrd');
  const kernel = (await store.blobs.putFile(join(dir, 'vmlinuz'))).digest;
  const initrd = (await store.blobs.putFile(join(dir, 'initrd'))).digest;
  const base = registerBase(store.db, {
    name: 'fake', digest: digestString('fake'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel, initrd, root, cmdline: '', size: 1, virtualSize: 1 << 20,
  });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', hexOf(root), '-F', 'qcow2', join(dir, 'layer.qcow2'), '1M']);
  const l = await store.blobs.putFile(join(dir, 'layer.qcow2'), { move: true });
  insertLayer(store.db, { digest: l.digest, parent: root, baseDigest: base.digest, kind: 'app', packages: [], key: 'k', size: l.size });
  const m: UnitManifest = {
    name: 'u', version: '1', base: 'fake', baseDigest: base.digest, top: l.digest, chain: [l.digest], run: null, params: {}, outputs: [], resources: {}, network: false,
    buildKey: 'bk', packages: [], createdAt: new Date().toISOString(),
  };
  upsertUnit(store.db, digestString('unit'), m);
  return { store, dir, root, layer: l.digest, unitDigest: digestString('unit') };
}

const kinds = (r: CheckReport, sev: 'problems' | 'leftovers' | 'repaired') => r[sev].map((f) => f.kind).sort();

/** A second layer nothing uses, over the first. */
async function unusedLayer(f: Fixture): Promise<Digest> {
  const p = join(f.dir, 'unused.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', hexOf(f.layer), '-F', 'qcow2', p, '1M']);
  const l = await f.store.blobs.putFile(p, { move: true });
  insertLayer(f.store.db, { digest: l.digest, parent: f.layer, baseDigest: digestString('fake'), kind: 'app', packages: [], key: 'k2', size: l.size });
  return l.digest;
}

/** Replaces a read-only blob's bytes in place (what bit rot or a torn write does). */
function overwrite(path: string, at: number, bytes: Buffer): void {
  chmodSync(path, 0o644);
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, at);
  closeSync(fd);
}

describe('vmwu doctor --check (src/upkeep/check.ts)', () => {
  test('a store as builds and imports leave it is consistent, and --deep hashes every registered blob', async () => {
    const f = await fixture();
    const r = await checkStore(f.store, { deep: true });
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.leftovers, []);
    assert.equal(r.ok, true);
    assert.deepEqual({ ...r.checked, bytesHashed: 0 }, { bases: 1, layers: 1, units: 1, blobs: 4, runs: 0, attempts: 0, bytesHashed: 0 });
    assert.ok(r.checked.bytesHashed > 0);
  });

  test('blobs: missing, emptied, and (with --deep only) corrupt are problems; an unused layer whose blob is gone is unregistered by --repair', async () => {
    const f = await fixture();
    const unused = await unusedLayer(f);
    rmSync(f.store.blobs.path(unused));
    // The padding at the end of the header cluster: qemu-img still reads the image, only its hash changes.
    overwrite(f.store.blobs.path(f.layer), 65_528, Buffer.from('rot'));
    let r = await checkStore(f.store);
    assert.deepEqual(kinds(r, 'problems'), ['blob-missing']);
    assert.match(r.problems[0]!.hint, /nothing uses this layer: `vmwu doctor --check --repair` unregisters it/);
    r = await checkStore(f.store, { deep: true });
    assert.deepEqual(kinds(r, 'problems'), ['blob-corrupt', 'blob-missing']);
    assert.match(r.problems.find((p) => p.kind === 'blob-corrupt')!.message, /layer sha256:[0-9a-f]{12} \(app\): blob .* is corrupt: its content hashes to sha256:/);
    r = await checkStore(f.store, { repair: true });
    assert.deepEqual(kinds(r, 'repaired'), ['blob-missing']);
    assert.equal(r.ok, true, 'the corrupt blob is only seen with --deep');
    assert.equal((f.store.db.prepare('SELECT COUNT(*) AS n FROM layers').get() as { n: number }).n, 1);
    chmodSync(f.store.blobs.path(f.root), 0o644);
    truncateSync(f.store.blobs.path(f.root), 0);
    r = await checkStore(f.store, { repair: true });
    assert.deepEqual(kinds(r, 'problems'), ['blob-torn'], 'a used blob is never repaired away');
    assert.match(r.problems[0]!.message, /the root disk of base fake: blob .* is empty/);
  });

  test('a layer whose backing file is not its parent, or whose parent is unknown, breaks its chain', async () => {
    const f = await fixture();
    const p = join(f.dir, 'wrong.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', 'not-the-parent', '-F', 'qcow2', p, '1M']);
    const wrong = await f.store.blobs.putFile(p, { move: true });
    insertLayer(f.store.db, { digest: wrong.digest, parent: f.layer, baseDigest: digestString('fake'), kind: 'app', packages: [], key: 'k3', size: wrong.size });
    f.store.db.prepare('UPDATE layers SET parent = ? WHERE digest = ?').run(digestString('nowhere'), f.layer);
    const r = await checkStore(f.store);
    const msgs = r.problems.filter((x) => x.kind === 'chain').map((x) => x.message).sort();
    assert.equal(msgs.length, 2, JSON.stringify(r.problems));
    assert.match(msgs.join('\n'), /its backing file is "not-the-parent", expected its parent/);
    assert.match(msgs.join('\n'), /its parent sha256:[0-9a-f]{12} is not in the store/);
    assert.ok(kinds(r, 'problems').includes('unit'), 'the unit whose chain no longer matches its layers is named too');
  });

  test('runs: a finished run whose result file is missing or torn is half-written; one the reaper closed is not; a dead owner\'s run is a leftover the repair reaps', async () => {
    const f = await fixture();
    const runDir = (id: string) => join(f.store.paths.runs, id);
    const add = (id: string, owner = selfIdentity()) => {
      mkdirSync(runDir(id), { recursive: true });
      insertRun(f.store.db, { id, base: 'fake', argv: ['true'], params: {}, resources: { memoryMiB: 1, cpus: 1, timeoutMs: 1 }, outDir: join(runDir(id), 'out'), runDir: runDir(id), scratchDir: null, owner });
    };
    const done = { exitCode: 0, phases: null, totalMs: 1, error: null };
    add('aaaaaa01'); finishRun(f.store.db, 'aaaaaa01', { status: 'succeeded', ...done });
    writeFileSync(join(runDir('aaaaaa01'), 'result.json'), JSON.stringify({ id: 'aaaaaa01' }));
    add('aaaaaa02'); finishRun(f.store.db, 'aaaaaa02', { status: 'failed', ...done });
    add('aaaaaa03'); finishRun(f.store.db, 'aaaaaa03', { status: 'succeeded', ...done });
    writeFileSync(join(runDir('aaaaaa03'), 'result.json'), '');
    add('aaaaaa04'); finishRun(f.store.db, 'aaaaaa04', { status: 'error', ...done, error: 'reaped' });
    add('aaaaaa05', DEAD);
    add('aaaaaa06');
    const r = await checkStore(f.store);
    assert.deepEqual(r.problems.map((p) => [p.kind, p.subject]), [['run-half-written', 'aaaaaa02'], ['run-half-written', 'aaaaaa03']]);
    assert.match(r.problems[0]!.message, /run aaaaaa02 is recorded as failed, but its result file .*result\.json is missing/);
    assert.match(r.problems[1]!.message, /is torn/);
    assert.deepEqual(kinds(r, 'leftovers'), ['run-orphan'], 'only the dead owner\'s run; the live one is in flight');
    const fixed = await checkStore(f.store, { repair: true });
    assert.deepEqual(kinds(fixed, 'repaired'), ['run-orphan']);
    assert.equal((f.store.db.prepare('SELECT status FROM runs WHERE id = ?').get('aaaaaa05') as { status: string }).status, 'error');
  });

  test('attempts and results: a settled attempt without a whole run.json, a succeeded one without work/, a lost result, and a dead runner\'s attempts', async () => {
    const f = await fixture();
    writeFileSync(join(f.dir, 'plan.pln'), 'parameter x integer range from 1 to 4\ntask main\n  exec true\n  copy node:o root:o-${jobindex}\nendtask\n');
    const e = await createExperiment(f.store, { planPath: join(f.dir, 'plan.pln'), base: 'fake', name: 'exp' });
    const att = (job: number, status: string, owner = selfIdentity()) => {
      const out = join(e.dir, 'jobs', String(job), 'attempt-1');
      mkdirSync(out, { recursive: true });
      f.store.db.prepare(`INSERT INTO attempts (experiment, job, attempt, run_id, owner, status, out_dir, started_at) VALUES ('exp', ?, 1, ?, ?, ?, ?, '')`)
        .run(job, `ab${job}`, owner, status, out);
      return out;
    };
    const whole = att(1, 'succeeded');
    writeFileSync(join(whole, 'run.json'), JSON.stringify({ id: 'ab1' }));
    mkdirSync(join(whole, 'work'));
    f.store.db.prepare(`UPDATE experiment_jobs SET state = 'succeeded', outputs = '["o-1"]' WHERE experiment = 'exp' AND idx = 1`).run();
    writeFileSync(join(whole, 'run.json'), JSON.stringify({ id: 'ab1' }));
    const other = att(2, 'failed');
    writeFileSync(join(other, 'run.json'), JSON.stringify({ id: 'someone-else' }));
    writeFileSync(join(att(3, 'succeeded'), 'run.json'), JSON.stringify({ id: 'ab3' }));
    att(4, 'running', DEAD);
    const r = await checkStore(f.store);
    assert.deepEqual(r.problems.map((p) => [p.kind, p.subject]).sort(), [
      ['attempt-half-written', 'exp/2 attempt 1'], ['attempt-half-written', 'exp/3 attempt 1'], ['result-missing', 'exp/1'],
    ]);
    assert.match(r.problems.find((p) => p.subject === 'exp/3 attempt 1')!.message, /succeeded, but its work dir .* is missing/);
    assert.deepEqual(r.leftovers.map((l) => [l.kind, l.subject]), [['attempt-orphan', 'exp']]);
    assert.match(r.leftovers[0]!.hint, /vmwu resume exp/);
    writeFileSync(join(e.dir, 'results', 'o-1'), 'x');
    assert.deepEqual(kinds(await checkStore(f.store), 'problems'), ['attempt-half-written', 'attempt-half-written']);
  });

  test('temp files: classified by writer; those of dead writers (or stale ones) are removable, fresh ones of unknown writers are kept, strays are never touched', async () => {
    const f = await fixture();
    const blobs = f.store.paths.blobs;
    // First: making a work dir removes what dead processes left, and those below are to be found by the check.
    const live = makeWorkDir(f.store.paths, 'import-');
    writeFileSync(join(blobs, '.tmp-4194000.1-abcdef'), 'dead writer');
    writeFileSync(join(blobs, `.tmp-${process.pid}.${processStartTime(process.pid)}-abcdef`), 'live writer');
    writeFileSync(join(blobs, 'notes.txt'), 'someone\'s');
    const dead = join(f.store.paths.tmp, 'build-dead01');
    mkdirSync(dead);
    writeFileSync(join(dead, WORK_DIR_OWNER), DEAD);
    const runOut = join(f.store.paths.runs, 'cafe01', 'out');
    mkdirSync(join(runOut, '.collect-AbCdEf'), { recursive: true });
    writeFileSync(join(runOut, '.run.json.0123456789ab.tmp'), '{');
    const old = join(f.store.paths.root, 'experiments', 'x', 'results');
    mkdirSync(old, { recursive: true });
    writeFileSync(join(old, '.o-1.vmwu-0123abcd-0'), 'half');
    utimesSync(join(old, '.o-1.vmwu-0123abcd-0'), new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000));
    mkdirSync(join(f.store.paths.root, 'experiments', 'x', 'jobs', '1', 'attempt-1', 'work'), { recursive: true });
    writeFileSync(join(f.store.paths.root, 'experiments', 'x', 'jobs', '1', 'attempt-1', 'work', '.mine.0123456789ab.tmp'), 'the job\'s own file');
    putSetting(f.store.db, `verified:${digestString('gone')}`, 'x');

    const r = await checkStore(f.store);
    assert.equal(r.ok, true, 'leftovers do not fail the check');
    const byPath = new Map(r.leftovers.map((l) => [l.subject, l]));
    assert.deepEqual([...byPath.keys()].sort(), [
      '1 mark(s)', 'blobs/sha256/.tmp-4194000.1-abcdef', 'blobs/sha256/notes.txt', 'experiments/x/results/.o-1.vmwu-0123abcd-0',
      'runs/cafe01/out/.collect-AbCdEf', 'runs/cafe01/out/.run.json.0123456789ab.tmp', 'tmp/build-dead01',
    ], 'the live writer\'s blob, the live work dir and the job\'s own work/ are not leftovers; fresh temps of unknown writers are');
    assert.deepEqual(r.leftovers.filter((l) => l.repairable).map((l) => l.subject).sort(),
      ['1 mark(s)', 'blobs/sha256/.tmp-4194000.1-abcdef', 'experiments/x/results/.o-1.vmwu-0123abcd-0', 'tmp/build-dead01']);
    assert.equal(byPath.get('blobs/sha256/notes.txt')!.kind, 'stray');

    const fixed = await checkStore(f.store, { repair: true });
    assert.equal(fixed.repaired.length, 4);
    assert.ok(!existsSync(dead) && existsSync(live) && existsSync(join(blobs, 'notes.txt')));
    assert.deepEqual(kinds(await checkStore(f.store), 'leftovers'), ['collect-staging', 'durable-temp', 'stray'], 'fresh temps of unknown writers stay');
  });

  test('gc removes dead processes\' work dirs instead of waiting hours for them, and is still stopped by a live one', async () => {
    const f = await fixture();
    const dead = join(f.store.paths.tmp, 'base-dead02');
    mkdirSync(dead);
    writeFileSync(join(dead, WORK_DIR_OWNER), DEAD);
    writeFileSync(join(dead, 'root.raw'), 'x'.repeat(1000));
    let r = runGc(f.store);
    assert.deepEqual(r.workDirs.map((w) => w.name), ['tmp/base-dead02']);
    assert.deepEqual(r.busy, []);
    assert.ok(!existsSync(dead));
    const live = makeWorkDir(f.store.paths, 'build-');
    assert.match(live, /\/tmp\/build-[A-Za-z0-9]+$/);
    assert.deepEqual(readdirSync(live), [WORK_DIR_OWNER]);
    r = runGc(f.store, { dryRun: true });
    assert.equal(r.busy.length, 1);
    assert.equal(scanStoreTemps(f.store.paths).find((t) => t.path === r.busy[0])!.writer, 'alive');
  });

  test('gc keeps the blob a young layer is backed by, even when that layer\'s base was removed: its chain still resolves', async () => {
    const f = await fixture();
    f.store.db.prepare('DELETE FROM units').run();
    f.store.db.prepare('DELETE FROM bases').run();
    const old = new Date(Date.now() - 3_600_000);
    for (const n of readdirSync(f.store.paths.blobs)) utimesSync(join(f.store.paths.blobs, n), old, old);
    const r = runGc(f.store);
    assert.deepEqual(r.layers, [], 'the layer is younger than the grace period');
    assert.deepEqual(r.blobs.map((b) => b.digest).sort(), [digestString('a kernel'), digestString('an initrd')].sort(), 'only the kernel and initrd went');
    assert.ok(f.store.blobs.has(f.root));
    assert.equal((await checkStore(f.store)).ok, true);
  });

  test('recordWhole: JSON naming its run, else torn; absent is missing', () => {
    assert.equal(recordWhole('{"id":"a1"}', 'a1'), 'whole');
    assert.equal(recordWhole('{"id":"a1"}', null), 'whole');
    assert.equal(recordWhole('{"id":"b2"}', 'a1'), 'torn');
    assert.equal(recordWhole('{"id":', 'a1'), 'torn');
    assert.equal(recordWhole(null, 'a1'), 'missing');
  });

  test('the CLI: exit 0 and "consistent" on a good store, 1 with each problem and its hint, --json for scripts', async () => {
    const f = await fixture();
    f.store.close();
    const cli = (args: string[]) => spawnSync(process.execPath, [join(repoRoot, 'bin', 'vmwu.js'), 'doctor', '--check', ...args], { env: { ...process.env, VMWU_HOME: f.store.paths.root }, encoding: 'utf8' });
    let r = cli([]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /checked {6}1 base\(s\), 1 layer\(s\), 1 unit\(s\), 4 blob\(s\) \(not hashed: --deep\)/);
    assert.match(r.stdout, /^consistent$/m);
    overwrite(join(f.store.paths.blobs, hexOf(f.layer)), 0, Buffer.from('XXXX'));
    r = cli(['--deep']);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /PROBLEM {2}\[blob-corrupt\] layer .* is corrupt/);
    assert.match(r.stdout, /hint: rebuild the units that use it/);
    r = cli(['--json']);
    assert.equal(r.status, 1, 'a qcow2 whose magic is gone breaks the chain check, --deep or not');
    const j = JSON.parse(r.stdout) as CheckReport;
    assert.equal(j.ok, false);
    assert.deepEqual(j.problems.map((p) => p.kind), ['chain']);
  });
});
