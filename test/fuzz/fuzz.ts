import { createHash, randomInt } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { repoRoot } from '../support/fixture-path.js';
import { EXECS, INPUT_OFFSET, LENGTH, RUNNING, type WorkerDone, type WorkerInput, type WorkerStats } from './protocol.js';

/** The fuzz targets, by name; each is test/fuzz/targets/<name>.ts with its corpus in test/fuzz/corpus/<name>/. */
export const TARGETS = ['plan', 'spec', 'collect', 'manifest', 'bundle'] as const;
export type TargetName = (typeof TARGETS)[number];

export const corpusDir = (target: string) => join(repoRoot, 'test', 'fuzz', 'corpus', target);

export interface FuzzOptions {
  seconds: number;
  /** Stop after this many inputs even if time is left. */
  maxExecs?: number;
  /** Random unless given; printed with the report so a run can be repeated. */
  seed?: number;
  /** An input that runs longer than this is a hang. */
  timeoutMs?: number;
  /** Heap limit of the worker; an input that needs more is a finding. */
  memoryMb?: number;
  /** Also read stored inputs from here, and write the new ones found. */
  corpusOut?: string;
  /** Where a finding's input is saved; test-output/fuzz/<target> by default. */
  artifactDir?: string;
  onStats?(s: WorkerStats): void;
}

export interface Finding {
  kind: 'error' | 'timeout' | 'crash';
  message: string;
  /** The input, saved so that `node dist/test/fuzz/cli.js --target T --run FILE` replays it. */
  file: string;
}

export interface FuzzReport {
  target: string;
  seed: number;
  ms: number;
  execs: number;
  seeds: number;
  corpus: number;
  features: number;
  finding?: Finding;
}

const SLOT = 1 << 20;

/**
 * Fuzzes one target in a worker thread. The supervisor stops the worker when an input
 * runs longer than the timeout (a sync parser in a loop cannot be interrupted from
 * inside) or the worker dies (out of memory, an error thrown outside the input's
 * promise), and saves the input that was running.
 */
export async function fuzzTarget(target: TargetName, o: FuzzOptions): Promise<FuzzReport> {
  const seed = o.seed ?? randomInt(2 ** 31);
  const timeoutMs = o.timeoutMs ?? 5000;
  const shared = new SharedArrayBuffer(INPUT_OFFSET + SLOT);
  const header = new Int32Array(shared, 0, INPUT_OFFSET / 4);
  // In memory where there is a tmpfs: the collect and bundle targets write files for every input.
  const scratch = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `vmwu-fuzz-${target}-`));
  const input: WorkerInput = {
    target, seconds: o.seconds, maxExecs: o.maxExecs, seed, scratch, shared,
    corpusDirs: [corpusDir(target), ...(o.corpusOut ? [join(o.corpusOut, target)] : [])],
    corpusOut: o.corpusOut ? join(o.corpusOut, target) : undefined,
  };
  const started = Date.now();
  const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: input, resourceLimits: { maxOldGenerationSizeMb: o.memoryMb ?? 1024 } });
  const running = (): Buffer => Buffer.from(new Uint8Array(shared, INPUT_OFFSET, Atomics.load(header, LENGTH)));
  const save = (kind: Finding['kind'], data: Uint8Array, message: string): Finding => {
    const dir = o.artifactDir ?? join(repoRoot, 'test-output', 'fuzz', target);
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${kind}-${createHash('sha1').update(data).digest('hex')}`);
    writeFileSync(file, data);
    return { kind, message, file };
  };

  try {
    const done = await new Promise<Omit<WorkerDone, 'finding'> & { finding?: Finding }>((resolve) => {
      let settled = false;
      // The finding is saved only by the first way the worker ends (a finding's own exit comes after it).
      const finish = (d: WorkerDone, finding?: () => Finding) => {
        if (settled) return;
        settled = true;
        clearInterval(watch);
        resolve({ ...d, finding: finding?.() });
      };
      const lost = (execs: number): WorkerDone => ({ type: 'done', execs, seeds: 0, corpus: 0, features: 0 });
      let lastExecs = -1;
      let since = Date.now();
      const watch = setInterval(() => {
        const execs = Atomics.load(header, EXECS);
        if (execs !== lastExecs || Atomics.load(header, RUNNING) === 0) {
          lastExecs = execs;
          since = Date.now();
        } else if (Date.now() - since > timeoutMs) {
          finish(lost(execs), () => save('timeout', running(), `an input ran for more than ${timeoutMs} ms`));
          void worker.terminate();
        }
      }, 100);
      worker.on('message', (m: WorkerDone | WorkerStats) => {
        if (m.type === 'stats') o.onStats?.(m);
        else finish(m, m.finding ? () => save('error', m.finding!.input, m.finding!.message) : undefined);
      });
      worker.on('error', (e) => finish(lost(Atomics.load(header, EXECS)), () => save('crash', running(), `the worker died: ${e.stack ?? String(e)}`)));
      worker.on('exit', (code) => finish(lost(Atomics.load(header, EXECS)), () => save('crash', running(), code === 13
        // Node's exit code for a top-level await left pending when nothing else can run.
        ? 'the input never finished: its promise never settled and nothing was left to wait for (the code waits for an event that never comes)'
        : `the worker exited with code ${code} before it finished`)));
    });
    return { target, seed, ms: Date.now() - started, execs: done.execs, seeds: done.seeds, corpus: done.corpus, features: done.features, finding: done.finding };
  } finally {
    await worker.terminate();
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function describeFinding(target: string, f: Finding): string {
  return `fuzz target ${target}: ${f.kind}\n${f.message}\ninput saved as ${f.file}\nreplay: node dist/test/fuzz/cli.js --target ${target} --run ${f.file}`;
}
