/**
 * What test/unit/store/durable.test.ts runs under strace: one store operation per
 * scenario, in a directory of its own, with a marker file opened just before the
 * operation so the test can find where it starts in the trace. Does nothing
 * unless VMWU_DURABLE_SCENARIO names a scenario (the test runner may load it).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tar from 'tar-stream';
import { writeBundle } from '../../../src/bundle/archive.js';
import { runGc } from '../../../src/upkeep/gc.js';
import { importBundle } from '../../../src/bundle/import.js';
import { BUNDLE_FORMAT, BUNDLE_VERSION, encodeManifest } from '../../../src/bundle/manifest.js';
import { collectOutputs } from '../../../src/run/collect.js';
import { registerBase } from '../../../src/store/bases.js';
import { BlobStore, digestFile, digestString, hexOf, type Digest } from '../../../src/store/blobs.js';
import { writeFileDurableSync } from '../../../src/store/durable.js';
import { openStore, type Store } from '../../../src/store/store.js';
import { attemptDir, createExperiment } from '../../../src/sweep/experiment.js';
import { ingestReports } from '../../../src/sweep/batch/ingest.js';
import { stageOut } from '../../../src/sweep/staging.js';
import { reportName, REPORTS_DIR, type Report } from '../../../src/sweep/batch/task-files.js';
import { insertLayer } from '../../../src/unit/records.js';

const mark = (dir: string) => closeSync(openSync(join(dir, 'MARK'), 'w'));

/** A store with a base whose root is a real, standalone qcow2 (the blob store's own), as imports and gc need. */
async function storeWithBase(dir: string): Promise<{ store: Store; root: Digest }> {
  const store = openStore(join(dir, 'store'));
  const qcow = join(dir, 'root.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', qcow, '1M']);
  const root = (await store.blobs.putFile(qcow, { move: true })).digest;
  registerBase(store.db, {
    name: 'fake', digest: digestString('fake'), arch: 'x86_64', os: 'linux', description: '', boot: 'bios', kernel: null, initrd: null, root, cmdline: '', size: 1, virtualSize: 1 << 20,
  });
  return { store, root };
}

/** A qcow2 layer over `parent`, named relatively, as builds make them. */
function layerFile(dir: string, parent: Digest, name: string): string {
  const path = join(dir, name);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', hexOf(parent), '-F', 'qcow2', path, '1M']);
  return path;
}

const scenarios: Record<string, (dir: string) => Promise<void>> = {
  async write(dir) {
    mark(dir);
    writeFileDurableSync(join(dir, 'record.json'), '{"whole":true}\n');
  },
  async 'put-copy'(dir) {
    writeFileSync(join(dir, 'src'), 'x'.repeat(100_000));
    const blobs = new BlobStore(join(dir, 'blobs'));
    mark(dir);
    await blobs.putFile(join(dir, 'src'));
  },
  async 'put-move'(dir) {
    writeFileSync(join(dir, 'src'), 'y'.repeat(100_000));
    const blobs = new BlobStore(join(dir, 'blobs'));
    mark(dir);
    await blobs.putFile(join(dir, 'src'), { move: true });
  },
  async collect(dir) {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    const done = (async () => { for await (const c of pack) chunks.push(c as Buffer); })();
    pack.entry({ name: 'meta/exit_code' }, '0\n');
    pack.entry({ name: 'work/', type: 'directory' });
    pack.entry({ name: 'work/sub/', type: 'directory' });
    pack.entry({ name: 'work/sub/a.txt' }, 'a'.repeat(5000));
    pack.entry({ name: 'work/b.txt' }, 'b');
    pack.finalize();
    await done;
    writeFileSync(join(dir, 'output.img'), Buffer.concat([...chunks, Buffer.alloc(4096)]));
    mark(dir);
    await collectOutputs({ source: join(dir, 'output.img'), outDir: join(dir, 'out'), maxBytes: 1 << 20 });
  },
  async 'stage-out'(dir) {
    mkdirSync(join(dir, 'work', 'tree'), { recursive: true });
    writeFileSync(join(dir, 'work', 'tree', 'f.txt'), 'tree file');
    mark(dir);
    await stageOut([{ from: 'tree', to: 'nested/tree-1', onerror: 'fail' }], join(dir, 'work'), join(dir, 'results'), { maxBytes: 1 << 20 });
  },
  async import(dir) {
    const { store, root } = await storeWithBase(dir);
    const layer = layerFile(dir, root, 'layer.qcow2');
    const digest = await digestFile(layer);
    const size = Number(execFileSync('stat', ['-c', '%s', layer], { encoding: 'utf8' }).trim());
    const base = { name: 'fake', digest: digestString('fake'), arch: 'x86_64', os: 'linux', description: '', boot: 'bios' as const, kernel: null, initrd: null, root, cmdline: '', size: 1, virtualSize: 1 << 20, packageManager: null, image: null, createdAt: '2026-01-01T00:00:00.000Z' };
    const at = '2026-01-01T00:00:00.000Z';
    const ovf = '<Envelope/>\n';
    const manifest = encodeManifest({
      format: BUNDLE_FORMAT, formatVersion: BUNDLE_VERSION, createdAt: at, producer: 'test', withBase: false,
      unit: { name: 'u', version: '1', digest: digestString('u'), base: 'fake', baseDigest: base.digest, top: digest, chain: [digest], run: ['true'], params: {}, outputs: [], resources: {}, network: false, buildKey: 'bk', packages: [], createdAt: at },
      layers: [{ digest, parent: root, baseDigest: base.digest, kind: 'app', packages: [], key: 'k', size, createdAt: at }],
      base, ovf: { digest: digestString(ovf), size: ovf.length }, blobs: [{ digest, size, role: 'layer' }],
    });
    await writeBundle({ out: join(dir, 'u.vmwu'), manifest, ovf, blobs: [{ digest, size, path: layer }], mtime: new Date(at) });
    mark(dir);
    await importBundle(store, join(dir, 'u.vmwu'));
    store.close();
  },
  async gc(dir) {
    const { store, root } = await storeWithBase(dir);
    const layer = await store.blobs.putFile(layerFile(dir, root, 'layer.qcow2'), { move: true });
    insertLayer(store.db, { digest: layer.digest, parent: root, baseDigest: digestString('fake'), kind: 'app', packages: [], key: 'k', size: layer.size });
    store.db.prepare(`UPDATE layers SET created_at = '2020-01-01T00:00:00.000Z'`).run();
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(store.blobs.path(layer.digest), old, old);
    mark(dir);
    const r = runGc(store);
    if (r.blobs.length !== 1 || r.layers.length !== 1) throw new Error(`gc removed ${JSON.stringify(r)}`);
    store.close();
  },
  async ingest(dir) {
    const store = openStore(join(dir, 'store'));
    const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;
    registerBase(store.db, { name: 'fake', digest: d('0'), arch: 'x86_64', os: 'linux', description: '', boot: 'kernel', kernel: d('1'), initrd: d('2'), root: d('3'), cmdline: '', size: 0, virtualSize: 0 });
    writeFileSync(join(dir, 'plan.pln'), 'parameter x integer range from 1 to 2\ntask main\n  exec work $x\n  copy node:out.txt root:out-${jobindex}.txt\nendtask\n');
    const e = await createExperiment(store, { planPath: join(dir, 'plan.pln'), base: 'fake', name: 'ing' });
    mkdirSync(join(e.dir, REPORTS_DIR), { recursive: true });
    for (const job of [1, 2]) {
      mkdirSync(join(attemptDir(e, job, 1), 'work'), { recursive: true });
      writeFileSync(join(attemptDir(e, job, 1), 'work', 'out.txt'), `job ${job}\n`);
      const r: Report = {
        kind: 'done', experiment: e.name, job, attempt: 1, host: 'n1', owner: '7:7@n1/boot', batchId: null, runId: `abcdef${job}`, at: new Date().toISOString(),
        result: { id: `abcdef${job}`, status: 'succeeded', exitCode: 0, phases: {}, totalMs: 1 },
      };
      writeFileSync(join(e.dir, REPORTS_DIR, reportName(job, 1, 'done')), JSON.stringify(r));
    }
    mark(dir);
    const res = await ingestReports(store, e, { owner: '1:1@submitter/boot' });
    if (res.finished.length !== 2) throw new Error(`ingested ${JSON.stringify(res)}`);
    store.close();
  },
};

const name = process.env.VMWU_DURABLE_SCENARIO;
if (name) {
  const run = scenarios[name];
  if (!run) throw new Error(`no scenario ${name}`);
  await run(process.env.VMWU_DURABLE_DIR!);
}
