import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isVmwuError } from '../../../src/errors.js';
import { listFilesIn } from '../../../src/sweep/files.js';
import { countJobs, expandJobs, parsePlan, type ListFiles, type Plan } from '../../../src/sweep/plan/index.js';
import { violated, type FuzzTarget } from '../target.js';

/**
 * Plan files: lexer, parser, job count and expansion (the first jobs only, as a sweep
 * would start them). Besides "typed errors only": every error names the plan file and
 * holds no control character (a terminal would act on an escape sequence quoted from the plan),
 * computed numeric values are finite numbers (integers exact), and the count agrees
 * with the jobs produced.
 */
const FILE = 'fuzz.pln';
const CAP = 200;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
let listFiles: ListFiles;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function checkError(e: unknown): never {
  if (isVmwuError(e) && !e.message.startsWith(FILE)) violated(`a plan error does not name the file: ${e.message}`);
  if (isVmwuError(e) && CONTROL.test(e.message)) violated(`a plan error holds a control character: ${JSON.stringify(e.message)}`);
  throw e;
}

function checkValue(plan: Plan, name: string, v: string): void {
  const p = plan.parameters.find((q) => q.name === name)!;
  // Given values (default, select) are passed on as written; computed ones must be numbers.
  if (p.domain.kind !== 'range' && p.domain.kind !== 'points' && p.domain.kind !== 'random') return;
  const n = Number(v);
  if (!NUMBER.test(v) || !Number.isFinite(n)) violated(`parameter ${name} got ${JSON.stringify(v)}, not a finite number`);
  if (p.type === 'integer' && (!/^[+-]?\d+$/.test(v) || !Number.isSafeInteger(n))) violated(`integer parameter ${name} got ${JSON.stringify(v)}, not an exact integer`);
}

const target: FuzzTarget = {
  maxLen: 4096,
  dictionary: [
    'parameter ', ' label ', ' float', ' integer', ' text', ' files', ' default ', ' range', ' from ', ' to ', ' step ', ' points ', ' random',
    ' select', ' anyof', ' oneof', 'task main\n', 'endtask\n', 'copy ', 'exec ', 'shexec ', 'node:execute ', 'onerror ', ' fail', ' ignore',
    'redirect ', ' stdout', ' stderr', ' append', ' off', 'root:', 'node:', '${jobindex}', '$jobindex', '${', '$$', '"', "'", '\\\n', ';',
    '/*', '*/', '//', '#', '\\x41', '\\101', '\\n', '*.txt', '**', '\ufeff',
  ],
  setup(scratch) {
    const root = join(scratch, 'root');
    mkdirSync(join(root, 'data'), { recursive: true });
    mkdirSync(join(root, 'models'));
    for (const f of ['a.txt', 'b.txt', 'data/c.dat', 'models/NACA0012.dat', '.hidden']) writeFileSync(join(root, f), f);
    listFiles = listFilesIn(root);
  },
  run(data) {
    let plan: Plan;
    let count: number;
    try {
      plan = parsePlan(data.toString('utf8'), FILE);
      count = countJobs(plan, { listFiles });
    } catch (e) {
      checkError(e);
    }
    let n = 0;
    try {
      for (const job of expandJobs(plan, { seed: 7, listFiles })) {
        if (job.index !== ++n) violated(`job ${n} has index ${job.index}`);
        for (const [name, v] of Object.entries(job.params)) checkValue(plan, name, v);
        if (n >= CAP) break;
      }
    } catch (e) {
      checkError(e);
    }
    if (n < CAP && n !== count) violated(`countJobs says ${count}, expansion gave ${n} jobs`);
  },
};
export default target;
