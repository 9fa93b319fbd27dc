import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { listTree, processesMentioning, testHome, tmp, vmwu, type CliResult } from '../support/harness.js';

/**
 * Bundles travel between stores: the unit is built once in the shared test store,
 * then exported and imported into fresh stores, where gc and base rm run too (they
 * never touch the shared store, which other test files use at the same time).
 */

interface RunJson { status: string; exitCode: number | null; outDir: string }
interface ExportJson { file: string; bytes: number; blobs: number; withBase: boolean; datasets: { carried: string[]; needed: string[] } }
interface ImportJson {
  unit: string; digest: string; base: { name: string; imported: boolean }; blobs: { total: number; added: number; present: number };
  datasets: { added: string[]; present: string[] }; missingData: string[];
}
interface GcJson { layers: { digest: string }[]; blobs: { digest: string; bytes: number }[]; tmpFiles: { name: string }[]; busy: string[]; freedBytes: number }

const work = tmp('vmwu-bundle-it-');
const withBase = join(work, 'bundletest-full.vmwu');
const withoutBase = join(work, 'bundletest.vmwu');
let chain: string[] = [];
let expectedStdout = '';

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stderr}`);
  return r;
}

function freshHome(): { home: string; env: NodeJS.ProcessEnv } {
  const home = tmp('vmwu-bundle-home-');
  return { home, env: { VMWU_HOME: home } };
}

async function runStdout(env: NodeJS.ProcessEnv): Promise<string> {
  const r = ok(await vmwu(['run', 'bundletest', '--json'], env), 'vmwu run bundletest');
  const j = JSON.parse(r.stdout) as RunJson;
  assert.equal(j.status, 'succeeded');
  return readFileSync(join(j.outDir, 'stdout'), 'utf8');
}

/** What "unchanged" means for a store: the same blob files, units, bases and datasets, and no staging left in tmp/. */
async function snapshot(home: string, env: NodeJS.ProcessEnv) {
  const blobs = join(home, 'blobs', 'sha256');
  return {
    blobs: existsSync(blobs) ? listTree(blobs) : [],
    tmp: existsSync(join(home, 'tmp')) ? readdirSync(join(home, 'tmp')) : [],
    units: ok(await vmwu(['units', '--json'], env), 'vmwu units').stdout,
    bases: ok(await vmwu(['base', 'list', '--json'], env), 'vmwu base list').stdout,
    datasets: ok(await vmwu(['data', 'list', '--json'], env), 'vmwu data list').stdout,
  };
}

/** A copy of the bundle with one byte changed at `at` (an offset into `entry`'s data). */
function damaged(name: string, entry: string, at: number): string {
  const b = readFileSync(withBase);
  const header = b.indexOf(Buffer.from(`${entry}\0`));
  assert.ok(header >= 0 && header % 512 === 0, `entry ${entry} not found on a block boundary`);
  b[header + 512 + at]! ^= 0xff;
  const f = join(work, name);
  writeFileSync(f, b);
  return f;
}

describe('vmwu export / import / gc', { concurrency: false, timeout: 600_000 }, () => {
  before(async () => {
    const dir = join(work, 'unit');
    mkdirSync(join(dir, 'app'), { recursive: true });
    writeFileSync(join(dir, 'app', 'hello.txt'), 'hello from the bundle\n');
    writeFileSync(join(dir, 'vmwu.yaml'), [
      'name: bundletest', 'version: 1.0.0', 'base: tiny', 'files: [{from: ./app, to: /app}]',
      'setup: "echo built > /app/marker"', 'run: "cat /app/marker /app/hello.txt"', '',
    ].join('\n'));
    const b = ok(await vmwu(['build', dir, '-q', '--json']), 'vmwu build');
    chain = (JSON.parse(b.stdout) as { chain: string[] }).chain;
    assert.equal(chain.length, 1);
    expectedStdout = await runStdout({});
    assert.equal(expectedStdout, 'built\nhello from the bundle\n');
  });

  test('export writes one tar: manifest.json first, unit.ovf, then the blobs', async () => {
    const full = JSON.parse(ok(await vmwu(['export', 'bundletest:1.0.0', '-o', withBase, '--with-base', '--json']), 'export --with-base').stdout) as ExportJson;
    const noData = { carried: [], needed: [] };
    assert.deepEqual({ ...full, bytes: 0 }, { file: withBase, bytes: 0, blobs: 4, withBase: true, datasets: noData });
    assert.equal(full.bytes, readFileSync(withBase).length);
    const thin = JSON.parse(ok(await vmwu(['export', 'bundletest', '-o', withoutBase, '--json']), 'export').stdout) as ExportJson;
    assert.deepEqual({ ...thin, bytes: 0 }, { file: withoutBase, bytes: 0, blobs: 1, withBase: false, datasets: noData });
    const b = readFileSync(withBase);
    assert.equal(b.toString('latin1', 0, 13), 'manifest.json');
    const m = JSON.parse(b.toString('utf8', 512, 512 + Number.parseInt(b.toString('latin1', 124, 135), 8))) as { unit: { name: string }; blobs: { role: string }[] };
    assert.equal(m.unit.name, 'bundletest');
    assert.deepEqual(m.blobs.map((x) => x.role), ['layer', 'kernel', 'initrd', 'root']);
    assert.ok(b.indexOf(Buffer.from('unit.ovf\0')) > 0 && b.indexOf(Buffer.from('unit.ovf\0')) < b.indexOf(Buffer.from(`blobs/sha256/${chain[0]!.slice(7)}\0`)));
    assert.ok(b.includes(Buffer.from('<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/2"')));
    assert.equal(readdirSync(work).filter((f) => f.includes('.tmp-')).length, 0, 'no temporary export file left');
  });

  test('import into a fresh store, then the unit runs there with the same output', async () => {
    const { env } = freshHome();
    const r = JSON.parse(ok(await vmwu(['import', withBase, '--json'], env), 'import').stdout) as ImportJson;
    assert.equal(r.unit, 'bundletest:1.0.0');
    assert.equal(r.base.name, 'tiny');
    assert.equal(r.base.imported, true);
    assert.deepEqual(r.blobs, { total: 4, added: 4, present: 0 });
    assert.equal(await runStdout(env), expectedStdout);
    // Importing again adds nothing.
    const again = JSON.parse(ok(await vmwu(['import', withBase, '--json'], env), 'import again').stdout) as ImportJson;
    assert.deepEqual(again.blobs, { total: 4, added: 0, present: 4 });
  });

  test('damaged bundles are refused with exit 125 and leave the store as it was', async () => {
    const { home, env } = freshHome();
    const pristine = await snapshot(home, env);
    const truncated = join(work, 'truncated.vmwu');
    const full = readFileSync(withBase);
    writeFileSync(truncated, full.subarray(0, Math.floor(full.length / 2)));
    const cases: [string, string, RegExp][] = [
      ['a flipped byte in a blob', damaged('blob-flip.vmwu', `blobs/sha256/${chain[0]!.slice(7)}`, 70_000), new RegExp(`layer blob ${chain[0]} is corrupt`)],
      ['a flipped byte in the manifest', damaged('manifest-flip.vmwu', 'manifest.json', 200), /manifest\.json (does not match its digest|is not valid JSON|is not valid UTF-8)/],
      ['a truncated file', truncated, /truncated/],
    ];
    for (const [what, file, message] of cases) {
      const r = await vmwu(['import', file], env);
      assert.equal(r.code, 125, `${what}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, message, what);
      assert.match(r.stderr, /hint: /, `${what}: a hint`);
      assert.deepEqual(await snapshot(home, env), pristine, `${what}: the store changed`);
    }
    // The same refusal as JSON, for scripts.
    const j = await vmwu(['import', truncated, '--json'], env);
    assert.equal(j.code, 125);
    assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'BAD_BUNDLE');
  });

  test('a bundle without its base needs the base in the importing store, and says so', async () => {
    const { home, env } = freshHome();
    const pristine = await snapshot(home, env);
    const r = await vmwu(['import', withoutBase], env);
    assert.equal(r.code, 125, r.stderr);
    assert.match(r.stderr, /exported without its base, and base tiny \(sha256:[0-9a-f]{64}\) is not in this store/);
    assert.match(r.stderr, /hint: export with --with-base, or build\/import the base first/);
    assert.deepEqual(await snapshot(home, env), pristine);
    // With the base there (brought by the full bundle), the thin one imports.
    ok(await vmwu(['import', withBase], env), 'import with base');
    const thin = JSON.parse(ok(await vmwu(['import', withoutBase, '--json'], env), 'import without base').stdout) as ImportJson;
    assert.equal(thin.base.imported, false);
  });

  test('gc removes what nothing uses, never what a unit uses; base rm refuses while a unit uses the base', async () => {
    const { home, env } = freshHome();
    ok(await vmwu(['import', withBase], env), 'import');
    const imported = Date.now();
    const blobDir = join(home, 'blobs', 'sha256');
    const hexes = () => readdirSync(blobDir).filter((f) => /^[0-9a-f]{64}$/.test(f)).sort();
    const all = hexes();
    assert.equal(all.length, 4);
    // A stray temp file from a crashed write, and one still being written.
    writeFileSync(join(blobDir, '.tmp-old'), 'x'.repeat(100));
    utimesSync(join(blobDir, '.tmp-old'), new Date(Date.now() - 2 * 3_600_000), new Date(Date.now() - 2 * 3_600_000));
    writeFileSync(join(blobDir, '.tmp-new'), 'y');

    const g1 = JSON.parse(ok(await vmwu(['gc', '--json'], env), 'gc').stdout) as GcJson;
    assert.deepEqual(g1.layers, []);
    assert.deepEqual(g1.blobs, []);
    assert.deepEqual(g1.tmpFiles.map((t) => t.name), ['.tmp-old']);
    assert.deepEqual(hexes(), all, 'gc removed nothing a unit uses');
    assert.ok(existsSync(join(blobDir, '.tmp-new')) && !existsSync(join(blobDir, '.tmp-old')));
    assert.equal(await runStdout(env), expectedStdout);

    const refused = await vmwu(['base', 'rm', 'tiny'], env);
    assert.equal(refused.code, 125);
    assert.match(refused.stderr, /base tiny is used by 1 unit\(s\): bundletest:1\.0\.0/);

    ok(await vmwu(['rm', 'bundletest'], env), 'rm');
    // gc leaves blobs younger than its grace period (a writer may be about to register them).
    await new Promise((r) => setTimeout(r, Math.max(0, imported + 11_000 - Date.now())));
    const dry = JSON.parse(ok(await vmwu(['gc', '--dry-run', '--json'], env), 'gc --dry-run').stdout) as GcJson;
    assert.deepEqual(dry.layers.map((l) => l.digest), chain);
    assert.deepEqual(hexes(), all, 'a dry run removes nothing');
    const g2 = JSON.parse(ok(await vmwu(['gc', '--json'], env), 'gc after rm').stdout) as GcJson;
    assert.deepEqual(g2.layers.map((l) => l.digest), chain);
    assert.deepEqual(g2.blobs.map((b) => b.digest), chain);
    assert.ok(g2.freedBytes > 0);
    assert.deepEqual(hexes(), all.filter((h) => !chain.includes(`sha256:${h}`)), 'the layer blob is gone, the base blobs stay');

    const rm = ok(await vmwu(['base', 'rm', 'tiny'], env), 'base rm');
    assert.match(rm.stdout, /removed base tiny .*stay until `vmwu gc`/);
    const g3 = ok(await vmwu(['gc'], env), 'gc after base rm');
    assert.match(g3.stdout, /removed 0 layer\(s\), 3 blob\(s\)/);
    assert.deepEqual(hexes(), []);
  });

  test('--with-data carries the unit\'s datasets: the importing store registers them and the unit reads them', async () => {
    const dir = join(work, 'dataunit');
    mkdirSync(join(dir, 'db'), { recursive: true });
    writeFileSync(join(dir, 'db', 'table.txt'), 'row 1\nrow 2\n');
    ok(await vmwu(['data', 'add', join(dir, 'db'), '--name', 'bundletest-db:1']), 'data add');
    writeFileSync(join(dir, 'vmwu.yaml'), 'name: bundledata\nversion: 1.0.0\nbase: tiny\ndata: [bundletest-db:1]\nrun: "wc -l /data/bundletest-db/table.txt"\n');
    ok(await vmwu(['build', dir, '-q']), 'build');
    const bundle = join(work, 'bundledata.vmwu');
    const e = JSON.parse(ok(await vmwu(['export', 'bundledata', '-o', bundle, '--with-base', '--with-data', '--json']), 'export --with-data').stdout) as ExportJson;
    assert.deepEqual(e.datasets, { carried: ['bundletest-db:1'], needed: [] });
    assert.equal(e.blobs, 4, 'kernel, initrd, root and the dataset image (the unit adds no layer)');
    const m = readFileSync(bundle);
    const manifest = JSON.parse(m.toString('utf8', 512, 512 + Number.parseInt(m.toString('latin1', 124, 135), 8))) as { formatVersion: number; blobs: { role: string }[]; datasets: { name: string }[] };
    assert.equal(manifest.formatVersion, 2);
    assert.deepEqual(manifest.blobs.map((b) => b.role), ['kernel', 'initrd', 'root', 'dataset']);

    const { env } = freshHome();
    const r = JSON.parse(ok(await vmwu(['import', bundle, '--json'], env), 'import').stdout) as ImportJson;
    assert.deepEqual(r.datasets, { added: ['bundletest-db:1'], present: [] });
    assert.deepEqual(r.missingData, []);
    const run = JSON.parse(ok(await vmwu(['run', 'bundledata', '--json'], env), 'run the imported unit').stdout) as RunJson;
    assert.equal(readFileSync(join(run.outDir, 'stdout'), 'utf8'), '2 /data/bundletest-db/table.txt\n');

    // Without --with-data: the export says what the other store needs, the import what it lacks.
    const thinBundle = join(work, 'bundledata-thin.vmwu');
    const t = JSON.parse(ok(await vmwu(['export', 'bundledata', '-o', thinBundle, '--with-base', '--json']), 'export').stdout) as ExportJson;
    assert.deepEqual(t.datasets, { carried: [], needed: ['bundletest-db:1'] });
    const other = freshHome();
    const ti = await vmwu(['import', thinBundle], other.env);
    assert.equal(ti.code, 0, ti.stderr);
    assert.match(ti.stderr, /need the datasets bundletest-db:1, which this store lacks/);

    // A local dataset of the same name and version with other content is never replaced, and nothing is imported.
    const clash = join(work, 'clash');
    mkdirSync(clash);
    writeFileSync(join(clash, 'table.txt'), 'other\n');
    ok(await vmwu(['data', 'add', clash, '--name', 'bundletest-db:1'], other.env), 'data add in the other store');
    const before = await snapshot(other.home, other.env);
    const refused = await vmwu(['import', bundle], other.env);
    assert.equal(refused.code, 125, refused.stderr);
    assert.match(refused.stderr, /already has dataset bundletest-db:1 with other content/);
    assert.deepEqual(await snapshot(other.home, other.env), before);
  });

  test('no QEMU process of these tests is left', () => {
    assert.deepEqual(processesMentioning('vmwu-bundle-home-'), []);
    assert.ok(testHome());
  });
});
