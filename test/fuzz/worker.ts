import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { isVmwuError } from '../../src/errors.js';
import { mulberry32 } from '../../src/sweep/plan/index.js';
import { BlockCoverage } from './coverage.js';
import { Mutator } from './mutate.js';
import { EXECS, INPUT_OFFSET, LENGTH, RUNNING, type WorkerDone, type WorkerInput } from './protocol.js';
import type { FuzzTarget } from './target.js';

/**
 * The fuzzing loop, in a worker thread so that the supervisor can stop an input that
 * hangs or runs out of memory. Before each input it publishes the input and a counter
 * in shared memory; the supervisor reads them when it has to stop the worker.
 */
const w = workerData as WorkerInput;
const target = (await import(`./targets/${w.target}.js`) as { default: FuzzTarget }).default;
const header = new Int32Array(w.shared, 0, INPUT_OFFSET / 4);
const slot = new Uint8Array(w.shared, INPUT_OFFSET);

await target.setup?.(w.scratch);

// vmwu's code, its dependencies and the targets' checks; not this engine, whose own branches (the mutations) would look like progress.
const coverage = new BlockCoverage((url) => url.includes('/dist/src/') || url.includes('/node_modules/') || url.includes('/dist/test/fuzz/targets/'));

type Outcome = { ok: true } | { ok: false; error: unknown };

async function execute(data: Buffer): Promise<Outcome> {
  const n = Math.min(data.length, slot.length);
  slot.set(data.subarray(0, n));
  Atomics.store(header, LENGTH, n);
  Atomics.add(header, EXECS, 1);
  Atomics.store(header, RUNNING, 1);
  try {
    await target.run(data);
    return { ok: true };
  } catch (error) {
    return isVmwuError(error) ? { ok: true } : { ok: false, error };
  } finally {
    Atomics.store(header, RUNNING, 0);
  }
}

function readCorpus(dirs: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const p = join(dir, name);
      if (statSync(p).isFile()) out.push(readFileSync(p).subarray(0, target.maxLen));
    }
  }
  return out;
}

const done: WorkerDone = { type: 'done', execs: 0, seeds: 0, corpus: 0, features: 0 };
const corpus: Buffer[] = [];
const seeds = readCorpus(w.corpusDirs);
done.seeds = seeds.length;
if (w.corpusOut) mkdirSync(w.corpusOut, { recursive: true });

const report = (data: Buffer, error: unknown) => {
  done.finding = { input: new Uint8Array(data), message: String((error as Error)?.stack ?? error) };
};

// Every stored input first: the seeds, and the inputs of findings kept as regressions.
for (const s of seeds.length ? seeds : [Buffer.alloc(0)]) {
  const r = await execute(s);
  done.execs++;
  if (!r.ok) {
    report(s, r.error);
    break;
  }
  coverage.collect();
  corpus.push(s);
}

const rand = mulberry32(w.seed);
const mutator = new Mutator(rand, { maxLen: target.maxLen, dictionary: target.dictionary, blockSize: target.blockSize });
const deadline = Date.now() + w.seconds * 1000;
let lastStats = Date.now();
while (!done.finding && Date.now() < deadline && (w.maxExecs === undefined || done.execs < w.maxExecs)) {
  const parent = corpus[Math.floor(rand() * corpus.length)]!;
  const input = mutator.mutate(parent, () => corpus[Math.floor(rand() * corpus.length)]);
  const r = await execute(input);
  done.execs++;
  if (!r.ok) {
    report(input, r.error);
    break;
  }
  if (coverage.collect() > 0) {
    corpus.push(input);
    if (w.corpusOut) writeFileSync(join(w.corpusOut, createHash('sha1').update(input).digest('hex')), input);
  }
  if (Date.now() - lastStats >= 10_000) {
    lastStats = Date.now();
    parentPort!.postMessage({ type: 'stats', execs: done.execs, corpus: corpus.length, features: coverage.features });
  }
}
coverage.close();
done.corpus = corpus.length;
done.features = coverage.features;
parentPort!.postMessage(done);
