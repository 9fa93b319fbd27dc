import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { galleryPage } from '../../../src/server/gallery.js';
import { type RunningServer } from '../../../src/server/index.js';
import { type Store } from '../../../src/store/store.js';
import { createExperiment, listAttempts, runExperiment, type Executor } from '../../../src/sweep/index.js';
import { auth, fakeStore, startApiServer } from '../../support/api-server.js';

const fast = { backoff: { baseMs: 5, capMs: 20 }, pollMs: 5, host: () => ({ cores: 2, availableMemMiB: 100_000 }) };

interface Res { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

/** A raw HTTP GET: the path goes out exactly as written. */
function get(server: RunningServer, path: string, headers: Record<string, string>): Promise<Res> {
  const u = new URL(server.url);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    r.on('error', reject);
    r.end();
  });
}

function png(w: number, h: number): Buffer {
  const p = new PNG({ width: w, height: h });
  p.data.fill(90);
  return PNG.sync.write(p);
}

const SVG = '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>fetch("/api/experiments")</script><rect width="4" height="4"/></svg>';

describe('image previews and the gallery (no VMs: a fake executor writes the outputs)', { concurrency: 1 }, () => {
  let dir: string;
  let store: Store;
  let server: RunningServer;
  let outside: string;

  before(async () => {
    ({ dir, store } = fakeStore('vmwu-preview-'));
    outside = join(dir, 'outside.png');
    writeFileSync(outside, png(1, 1));
    writeFileSync(join(dir, 'p.pln'), 'parameter x integer range from 1 to 3\ntask main\n  exec work $x\nendtask\n');
    writeFileSync(join(dir, 'many.pln'), 'parameter x integer range from 1 to 30\ntask main\n  exec work $x\nendtask\n');
    server = await startApiServer(store, dir);

    // Job 1 succeeds with images, liars and escapes; job 2 fails but leaves a PGM; job 3 succeeds with nothing to show.
    await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'pics', slots: 1, retries: 0 });
    const executor: Executor = {
      name: 'fake-pics',
      async runAttempt(_s, ctx) {
        const work = join(ctx.outDir, 'work');
        mkdirSync(join(work, 'sub'), { recursive: true });
        const i = ctx.job.index;
        if (i === 1) {
          writeFileSync(join(work, 'plot.png'), png(8, 4));
          writeFileSync(join(work, 'strip.ppm'), Buffer.concat([Buffer.from('P6\n# a strip\n1600 100\n255\n'), Buffer.alloc(1600 * 100 * 3, 200)]));
          writeFileSync(join(work, 'evil.svg'), SVG);
          writeFileSync(join(work, 'liar.png'), '<html><script>alert(1)</script></html>');
          writeFileSync(join(work, 'sub', 'data.bin'), png(2, 2));
          writeFileSync(join(work, 'notes.txt'), 'hello');
          writeFileSync(join(work, 'big.png'), png(1, 1));
          truncateSync(join(work, 'big.png'), 21 * 1024 * 1024);
          symlinkSync(outside, join(work, 'link.png'));
          symlinkSync(dir, join(work, 'up'));
        } else if (i === 2) {
          writeFileSync(join(work, 'grey.pgm'), 'P2 2 2 255\n0 64\n128 255\n');
        }
        return { runId: null, status: i === 2 ? 'failed' : 'succeeded', exitCode: i === 2 ? 1 : 0, phases: null, totalMs: 1 };
      },
    };
    await runExperiment(store, 'pics', { ...fast, executor });
  });

  after(async () => {
    await server?.close();
    store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const preview = (job: number, path: string, extra = '') => get(server, `/api/experiments/pics/jobs/${job}/preview/${path}${extra}`, auth);

  test('a PNG is served as image/png because of its bytes, with the headers that let nothing in it run', async () => {
    const r = await preview(1, 'work/plot.png');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'image/png');
    assert.equal(r.headers['content-security-policy'], "default-src 'none'; style-src 'unsafe-inline'; sandbox");
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['content-disposition'], 'inline; filename="plot.png"');
    assert.deepEqual([PNG.sync.read(r.body).width, PNG.sync.read(r.body).height], [8, 4]);
    const bin = await preview(1, 'work/sub/data.bin');
    assert.equal(bin.headers['content-type'], 'image/png', 'an image under another name is still an image');
  });

  test('SVG: image/svg+xml under a sandboxing CSP and nosniff, bytes unchanged (the page shows it only through <img>)', async () => {
    const r = await preview(1, 'work/evil.svg', '?attempt=1');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'image/svg+xml');
    assert.match(String(r.headers['content-security-policy']), /default-src 'none'.*sandbox$/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.body.toString(), SVG);
  });

  test('PPM and PGM are converted to PNG; a thumbnail is scaled down here', async () => {
    const full = await preview(1, 'work/strip.ppm');
    assert.equal(full.status, 200);
    assert.equal(full.headers['content-type'], 'image/png');
    const img = PNG.sync.read(full.body);
    assert.deepEqual([img.width, img.height, img.data[0]], [1600, 100, 200]);
    const thumb = PNG.sync.read((await preview(1, 'work/strip.ppm', '?thumb=1')).body);
    assert.deepEqual([thumb.width, thumb.height], [320, 20]);
    const grey = await preview(2, 'work/grey.pgm');
    assert.equal(grey.status, 200, grey.body.toString());
    assert.deepEqual([...PNG.sync.read(grey.body).data.subarray(0, 8)], [0, 0, 0, 255, 64, 64, 64, 255]);
  });

  test('what is not an image, or too big, gets no preview (and is never served as what its name says)', async () => {
    const liar = await preview(1, 'work/liar.png');
    assert.equal(liar.status, 415);
    assert.equal(JSON.parse(liar.body.toString()).error, 'NOT_AN_IMAGE');
    assert.match(String(liar.headers['content-type']), /^application\/json/);
    assert.doesNotMatch(liar.body.toString(), /<script>/);
    assert.equal((await preview(1, 'work/notes.txt')).status, 415);
    const big = await preview(1, 'work/big.png');
    assert.equal(big.status, 413);
    assert.equal(JSON.parse(big.body.toString()).error, 'TOO_BIG_TO_PREVIEW');
  });

  test('the preview URL is confined like downloads: dot segments in every encoding, symlinks out, other attempts and jobs', async () => {
    const attacks = [
      '../../../../outside.png', 'work/../../../../../outside.png', '%2e%2e/%2e%2e/%2e%2e/%2e%2e/outside.png', '..%2f..%2f..%2f..%2foutside.png',
      '%252e%252e/%252e%252e/%252e%252e/%252e%252e/outside.png', '..%5c..%5c..%5c..%5coutside.png', '%2fetc%2fpasswd', 'work/%00plot.png',
      'work/link.png', 'work/up/outside.png', './work/plot.png', 'work//plot.png', '%', 'work',
    ];
    for (const a of attacks) {
      const r = await preview(1, a);
      assert.notEqual(r.status, 200, `${a} was served`);
      assert.ok(!r.body.includes(png(1, 1)), a);
    }
    assert.equal((await preview(1, 'work/plot.png', '?attempt=2')).status, 404);
    assert.equal((await preview(99, 'work/plot.png')).status, 404);
    assert.equal((await get(server, '/api/experiments/pics/jobs/1/preview/work/plot.png', {})).status, 401, 'previews need the token');
  });

  test('the gallery lists the image outputs of finished jobs, by their bytes, each with its job and attempt', async () => {
    const r = await get(server, '/api/experiments/pics/gallery', auth);
    assert.equal(r.status, 200);
    const page = JSON.parse(r.body.toString()) as { images: { job: number; attempt: number; path: string; type: string }[]; finishedJobs: number; scannedJobs: number; next: number | null };
    assert.deepEqual(page.images.map((i) => [i.job, i.attempt, i.path, i.type]), [
      [1, 1, 'work/evil.svg', 'svg'], [1, 1, 'work/plot.png', 'png'], [1, 1, 'work/strip.ppm', 'pnm'], [2, 1, 'work/grey.pgm', 'pnm'],
    ], 'not the liar, the oversized file, data.bin (no image name), nor the symlinks');
    assert.deepEqual([page.finishedJobs, page.scannedJobs, page.next], [3, 3, null]);
    assert.equal((await get(server, '/api/experiments/nope/gallery', auth)).status, 404);
  });

  test('gallery pages: at most 200 images and a bounded run of jobs each, a job never split, keyset paging by job index', async () => {
    await createExperiment(store, { planPath: join(dir, 'many.pln'), base: 'fake', name: 'many', slots: 2, retries: 0 });
    const one = png(1, 1);
    const executor: Executor = {
      name: 'fake-many',
      async runAttempt(_s, ctx) {
        mkdirSync(join(ctx.outDir, 'work'), { recursive: true });
        for (let k = 0; k < 11; k++) writeFileSync(join(ctx.outDir, 'work', `f${String(k).padStart(2, '0')}.png`), one);
        return { runId: null, status: 'succeeded', exitCode: 0, phases: null, totalMs: 1 };
      },
    };
    await runExperiment(store, 'many', { ...fast, executor });
    const fetchPage = async (q: string) => JSON.parse((await get(server, `/api/experiments/many/gallery${q}`, auth)).body.toString()) as
      { images: { job: number }[]; scannedJobs: number; next: number | null; finishedJobs: number };
    const p1 = await fetchPage('');
    // 11 images a job: 18 jobs (198 images) fit in 200, the 19th would not.
    assert.deepEqual([p1.images.length, p1.scannedJobs, p1.next, p1.finishedJobs], [198, 18, 18, 30]);
    const p2 = await fetchPage(`?after=${p1.next}`);
    assert.deepEqual([p2.images.length, p2.scannedJobs, p2.next, p2.images[0]!.job], [132, 12, null, 19]);
    const few = await fetchPage('?jobs=5');
    assert.deepEqual([few.images.length, few.scannedJobs, few.next], [55, 5, 5], 'a page looks at no more jobs than asked');
    const junk = await fetchPage('?after=-3&jobs=abc');
    assert.equal(junk.images[0]!.job, 1, 'junk paging values fall back to the defaults');
    // Jobs that have not finished are not looked at.
    await createExperiment(store, { planPath: join(dir, 'p.pln'), base: 'fake', name: 'unrun', retries: 0 });
    assert.deepEqual(galleryPage(store.db, 'unrun'), { images: [], finishedJobs: 0, scannedJobs: 0, next: null });
    assert.ok(listAttempts(store.db, 'many').length === 30);
  });
});
