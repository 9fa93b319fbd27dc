/**
 * Dataset prepare time (issue 13): a job with a 2 GB dataset and with a 10 MB
 * one attached (`--data`), against the same 2 GB given with `--input` (copied
 * onto the job's input disk). Prints the prepare times, their ratio and the
 * bytes each job's instance put on the disk.
 *
 *   node dist/bench/datasets.js [runs]     (a throw-away store in /tmp; needs mkfs.erofs)
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { addDataset } from '../src/data/add.js';
import { parseDatasetRef } from '../src/data/ref.js';
import { instancePaths, makeInstanceDirs, removeInstanceFiles, runLogPaths } from '../src/run/instance.js';
import { dataDiskBytes, prepareInstance, type DataDisk } from '../src/run/prepare.js';
import { openStore } from '../src/store/store.js';
import { fmt, median } from './stats.js';

const runs = Number(process.argv[2] ?? 10);
const root = mkdtempSync(join(tmpdir(), 'vmwu-bench-data-'));
const store = openStore(join(root, 'store'));

function dataFile(dir: string, bytes: number): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'db.bin');
  const fd = openSync(path, 'w');
  const block = randomBytes(1024 * 1024);
  for (let off = 0; off < bytes; off += block.length) writeSync(fd, block, 0, Math.min(block.length, bytes - off));
  closeSync(fd);
  return path;
}

/** Blocks the instance's files take on the disk: what a job costs in copies. */
function diskBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => {
    const st = statSync(join(dir, f));
    return n + (st.isFile() ? st.blocks * 512 : 0);
  }, 0);
}

async function timePrepare(label: string, o: { data?: DataDisk[]; inputs?: string[] }, n = runs): Promise<{ ms: number[]; bytes: number }> {
  const ms: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const id = `${label}-${i}`;
    const dir = join(root, 'instances', id);
    const p = instancePaths(dir, runLogPaths(dir), id);
    makeInstanceDirs(p);
    const t = performance.now();
    await prepareInstance({ root: baseRoot, virtualSize: 1024 ** 3 }, { id, argv: ['true'], maxOutputBytes: 64 * 1024 ** 2, ...o }, p);
    ms.push(performance.now() - t);
    bytes = diskBytes(dir);
    await removeInstanceFiles(p);
  }
  return { ms, bytes };
}

let baseRoot = '';
try {
  // A stand-in root image: the overlay sits on it, whatever it holds.
  baseRoot = dataFile(join(root, 'base'), 1024 ** 2);
  process.stderr.write('making a 2 GB and a 10 MB dataset (random data, vmwu data add)…\n');
  const t0 = performance.now();
  const big = await addDataset(store, dataFile(join(root, 'big'), 2 * 1024 ** 3), parseDatasetRef('big'));
  const addMs = performance.now() - t0;
  const small = await addDataset(store, dataFile(join(root, 'small'), 10 * 1024 ** 2), parseDatasetRef('small'));
  const disk = (d: typeof big.dataset): DataDisk => ({ name: d.name, path: store.blobs.path(d.digest), virtualSize: dataDiskBytes(d.imageBytes) });
  await timePrepare('warm', { data: [disk(small.dataset)] });
  const b = await timePrepare('data-2g', { data: [disk(big.dataset)] });
  const s = await timePrepare('data-10m', { data: [disk(small.dataset)] });
  // Copying 2 GB per job takes seconds: three runs say enough.
  const copy = await timePrepare('input', { inputs: [join(root, 'big', 'db.bin')] }, Math.min(runs, 3));
  const mib = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MiB`;
  console.log(`vmwu data add of 2 GB (erofs image, hashed into the store, once): ${(addMs / 1000).toFixed(1)} s`);
  console.log(`runs: ${runs} each (overlay + input disk + output disk + dataset overlay)`);
  console.log(`--data 2 GB    median ${fmt(median(b.ms))}  max ${fmt(Math.max(...b.ms))}  on disk per job ${mib(b.bytes)}`);
  console.log(`--data 10 MB   median ${fmt(median(s.ms))}  max ${fmt(Math.max(...s.ms))}  on disk per job ${mib(s.bytes)}`);
  console.log(`--input 2 GB   median ${fmt(median(copy.ms))}  (${copy.ms.length} runs)  on disk per job ${mib(copy.bytes)}`);
  console.log(`ratio --data 2 GB / 10 MB: ${(median(b.ms) / median(s.ms)).toFixed(2)}  (target ≈ 1, both <= 50 ms)`);
  console.log(`--input 2 GB / --data 2 GB: ${(median(copy.ms) / median(b.ms)).toFixed(0)}×`);
} finally {
  store.close();
  rmSync(root, { recursive: true, force: true });
}
