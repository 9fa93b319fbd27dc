/**
 * Instance prepare time against base size: a 100 MB and a 2 GB base (real data,
 * not sparse), same job. The overlay never copies the base, so both should take
 * the same few tens of milliseconds.
 *
 *   node dist/bench/prepare.js [runs]     (uses a throw-away store in /tmp)
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { convertImage, imageInfo } from '../src/image/qemu-img.js';
import { instancePaths, makeInstanceDirs, removeInstanceFiles, runLogPaths } from '../src/run/instance.js';
import { prepareInstance } from '../src/run/prepare.js';
import { registerBase, type Base } from '../src/store/bases.js';
import { digestString } from '../src/store/blobs.js';
import { openStore, type Store } from '../src/store/store.js';
import { fmt, median } from './stats.js';

const runs = Number(process.argv[2] ?? 20);
const root = mkdtempSync(join(tmpdir(), 'vmwu-bench-prepare-'));
const store = openStore(root);

async function syntheticBase(name: string, bytes: number, s: Store): Promise<Base> {
  const raw = join(root, `${name}.raw`);
  const fd = openSync(raw, 'w');
  const block = randomBytes(1024 * 1024);
  for (let off = 0; off < bytes; off += block.length) writeSync(fd, block);
  closeSync(fd);
  const qcow = join(root, `${name}.qcow2`);
  await convertImage(raw, 'raw', qcow, 'qcow2');
  rmSync(raw);
  const info = await imageInfo(qcow, 'qcow2');
  const r = await s.blobs.putFile(qcow, { move: true });
  return registerBase(s.db, {
    name, digest: digestString(`${name}:${r.digest}`), arch: 'x86_64', os: 'linux', description: 'benchmark', boot: 'kernel',
    kernel: null, initrd: null, root: r.digest, cmdline: '', size: r.size, virtualSize: info.virtualSize,
  });
}

async function timePrepare(base: Base): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const id = `${base.name}-${i}`;
    const dir = join(store.paths.tmp, id);
    const p = instancePaths(dir, runLogPaths(dir), id);
    makeInstanceDirs(p);
    const t = performance.now();
    await prepareInstance({ root: store.blobs.path(base.root), virtualSize: base.virtualSize }, { id, argv: ['true'], params: { n: '5' }, maxOutputBytes: 2 * 1024 ** 3 }, p);
    times.push(performance.now() - t);
    await removeInstanceFiles(p);
  }
  return times;
}

try {
  process.stderr.write('making a 100 MB and a 2 GB base (real data)…\n');
  const small = await syntheticBase('base-100m', 100 * 1024 ** 2, store);
  const big = await syntheticBase('base-2g', 2 * 1024 ** 3, store);
  await timePrepare(small); // warm-up: first spawn of qemu-img pays for page-cache misses
  const ts = await timePrepare(small);
  const tb = await timePrepare(big);
  console.log(`runs: ${runs} each (overlay + input disk + sparse output disk)`);
  console.log(`base 100 MB (qcow2 ${(small.size / 1024 ** 2).toFixed(0)} MiB)  median ${fmt(median(ts))}  max ${fmt(Math.max(...ts))}`);
  console.log(`base 2 GB   (qcow2 ${(big.size / 1024 ** 2).toFixed(0)} MiB)  median ${fmt(median(tb))}  max ${fmt(Math.max(...tb))}`);
  console.log(`ratio 2 GB / 100 MB: ${(median(tb) / median(ts)).toFixed(2)}  (target ≈ 1, both <= 50 ms)`);
} finally {
  store.close();
  rmSync(root, { recursive: true, force: true });
}
