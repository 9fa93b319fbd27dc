import { controlCharIndex, describeControlChar, displayValue } from '../../control-chars.js';
import { VmwuError } from '../../errors.js';
import { planError } from './lexer.js';
import type { CommandNode, Domain, Location, NumberLit, Plan, PlanParameter, Template } from './parser.js';

/**
 * A parsed plan turned into its jobs: counted before anything is expanded, then each job's parameter
 * values and commands produced lazily, in nested-loop order.
 */

/** Matches glob patterns in the experiment root; injected so this module stays free of I/O. */
export type ListFiles = (patterns: string[]) => string[];

export interface CountContext {
  listFiles?: ListFiles;
  /**
   * Refuse a plan of more jobs than this (TOO_MANY_JOBS), counted arithmetically
   * before anything is expanded, so a typo such as `step 0.0000001` fails at once
   * instead of filling the store. No limit when absent.
   */
  maxJobs?: number;
}

export interface ExpandOptions extends CountContext {
  /** Seeds `random` parameters; the caller records it so a resumed experiment draws the same values. */
  seed: number;
}

export type Command =
  | { kind: 'copy'; from: { loc: Location; path: string }; to: { loc: Location; path: string } }
  | { kind: 'exec'; argv: string[] }
  | { kind: 'shexec'; cmd: string }
  | { kind: 'onerror'; mode: 'fail' | 'ignore' }
  | { kind: 'redirect'; stream: 'stdout' | 'stderr'; append: boolean; file: string | null };

export interface Job {
  /** 1-based, the value of ${jobindex}. */
  index: number;
  params: Record<string, string>;
  commands: Command[];
}

interface Axis {
  size: number;
  at(i: number): string;
}

export function countJobs(plan: Plan, ctx: CountContext = {}): number {
  const sizes = plan.parameters.map((p) => domainSize(plan, p, ctx));
  if (ctx.maxJobs !== undefined) checkJobLimit(plan, sizes, ctx.maxJobs);
  return total(plan, sizes);
}

/** The product is taken in floating point, so 10^11 or 10^400 jobs are refused as readily as 10^5 + 1. */
function checkJobLimit(plan: Plan, sizes: number[], max: number): void {
  const n = sizes.reduce((a, b) => a * b, 1);
  if (n <= max) return;
  const factors = plan.parameters.flatMap((p, i) => (sizes[i]! > 1 ? [`${p.name}: ${bigCount(sizes[i]!)} at ${p.pos.line}:${p.pos.col}`] : []));
  throw new VmwuError('TOO_MANY_JOBS',
    `${plan.fileName}: the plan expands to ${bigCount(n)} jobs (${factors.join(' × ')}), more than the limit of ${max}`,
    'if you mean it, raise the limit with --max-jobs N (vmwu sweep) or maxJobs (POST /api/experiments); otherwise give the parameters fewer values');
}

function bigCount(n: number): string {
  return Number.isSafeInteger(n) ? String(n) : n.toPrecision(3);
}

/**
 * Jobs in nested-loop order: the first parameter varies slowest. Values are computed per index
 * (mixed radix), so no cross product is materialised. Validation runs at call time; the jobs
 * themselves are produced lazily.
 */
export function expandJobs(plan: Plan, opts: ExpandOptions): Generator<Job> {
  if (!Number.isSafeInteger(opts.seed)) {
    throw new VmwuError('PLAN_EXPAND', `seed must be an integer, got ${String(opts.seed)}`, 'Record the seed as an integer with the experiment.');
  }
  // Before the axes, so that a refused plan lists no files.
  if (opts.maxJobs !== undefined) checkJobLimit(plan, plan.parameters.map((p) => domainSize(plan, p, opts)), opts.maxJobs);
  const axes = plan.parameters.map((p) => axis(plan, p, opts));
  const count = total(plan, axes.map((a) => a.size));
  const commands = plan.task.commands.map(compile);
  return generate(plan.parameters, axes, count, commands);
}

function* generate(params: PlanParameter[], axes: Axis[], count: number, commands: Compiled[]): Generator<Job> {
  const digits = new Array<number>(axes.length);
  for (let k = 0; k < count; k++) {
    let rem = k;
    for (let j = axes.length - 1; j >= 0; j--) {
      const size = axes[j].size;
      digits[j] = rem % size;
      rem = (rem - digits[j]) / size;
    }
    const values: Record<string, string> = {};
    const vars = new Map<string, string>();
    params.forEach((p, j) => {
      const v = axes[j].at(digits[j]);
      values[p.name] = v;
      vars.set(p.name, v);
    });
    const index = String(k + 1);
    vars.set('jobindex', index);
    vars.set('nimrod_jobindex', index);
    yield { index: k + 1, params: values, commands: commands.map((c) => c(vars)) };
  }
}

function total(plan: Plan, sizes: number[]): number {
  const n = sizes.reduce((a, b) => a * b, 1);
  if (!Number.isSafeInteger(n)) {
    throw new VmwuError('PLAN_EXPAND', `${plan.fileName}: the plan has too many jobs to count (${n})`, 'Reduce the number of values of some parameters.');
  }
  return n;
}

// ── domains ───────────────────────────────────────────────────────────────

function domainSize(plan: Plan, p: PlanParameter, ctx: CountContext): number {
  const d = p.domain;
  switch (d.kind) {
    case 'default':
    case 'oneof':
      return 1;
    case 'anyof':
      return p.type === 'files' ? resolveFiles(plan, p, ctx).length : d.values.length;
    case 'range':
      return stepCount(d.from.value, d.to.value, d.step.value);
    case 'points':
      return d.points.value;
    case 'random':
      return d.points?.value ?? 1;
  }
}

function axis(plan: Plan, p: PlanParameter, opts: ExpandOptions): Axis {
  const d = p.domain;
  const isInt = p.type === 'integer';
  switch (d.kind) {
    case 'default':
      return list([d.value.text]);
    case 'oneof':
      return list([(d.default ?? d.values[0]).text]);
    case 'anyof':
      return list(p.type === 'files' ? resolveFiles(plan, p, opts) : d.values.map((v) => v.text));
    case 'range':
      return rangeAxis(d.from, d.to, d.step, isInt);
    case 'points':
      return pointsAxis(d, isInt);
    case 'random':
      return randomAxis(d, isInt, streamSeed(opts.seed, p.name));
  }
}

function list(values: string[]): Axis {
  return { size: values.length, at: (i) => values[i] };
}

/** Inclusive of `to` when it lands within floating tolerance: 0..1 step 0.1 has 11 values. */
function stepCount(from: number, to: number, step: number): number {
  const q = (to - from) / step;
  return Math.floor(q + Math.max(1e-9, Math.abs(q) * 1e-12)) + 1;
}

function rangeAxis(from: NumberLit, to: NumberLit, step: NumberLit, isInt: boolean): Axis {
  const size = stepCount(from.value, to.value, step.value);
  // Multiplying (not accumulating) then rounding to the inputs' decimals removes float noise
  // such as 0.30000000000000004 and 1.1e-16 where 0 was meant.
  const places = Math.min(100, Math.max(decimals(from.text), decimals(step.text)));
  const at = (i: number): string => {
    const v = from.value + i * step.value;
    return isInt ? String(v) : String(Number(v.toFixed(places)));
  };
  return { size, at };
}

function pointsAxis(d: Extract<Domain, { kind: 'points' }>, isInt: boolean): Axis {
  const n = d.points.value;
  const a = d.from.value;
  const b = d.to.value;
  const at = (i: number): string => {
    if (n === 1) return isInt ? String(a) : clean(a);
    // Weighted form hits both ends exactly and gives an exact 0 in symmetric ranges.
    const v = (a * (n - 1 - i) + b * i) / (n - 1);
    return isInt ? String(Math.round(v)) : clean(v);
  };
  return { size: n, at };
}

/**
 * Draws on demand and keeps them: the stream is sequential, and drawing all points up
 * front made `random … points 1000000000` hang expandJobs before its first job.
 */
function randomAxis(d: Extract<Domain, { kind: 'random' }>, isInt: boolean, seed: number): Axis {
  const next = mulberry32(seed);
  const a = d.from.value;
  const b = d.to.value;
  const drawn: string[] = [];
  const at = (i: number): string => {
    while (drawn.length <= i) {
      const u = next();
      drawn.push(isInt ? String(a + Math.floor(u * (b - a + 1))) : clean(a + u * (b - a)));
    }
    return drawn[i];
  };
  return { size: d.points?.value ?? 1, at };
}

/** Sorted by code unit so job numbering does not depend on directory order or locale. */
function resolveFiles(plan: Plan, p: PlanParameter, ctx: CountContext): string[] {
  const patterns = p.domain.kind === 'anyof' ? p.domain.values.map((v) => v.text) : [];
  if (!ctx.listFiles) {
    throw planError(plan.fileName, p.pos, `files parameter "${p.name}" needs a file list to expand`, 'Pass listFiles to countJobs/expandJobs.', 'PLAN_EXPAND');
  }
  const files = [...new Set(ctx.listFiles(patterns))].filter((f) => f !== '').sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  if (files.length === 0) {
    throw planError(
      plan.fileName,
      p.domain.pos,
      `no files match ${patterns.map((s) => JSON.stringify(s)).join(' ')} for parameter "${p.name}"`,
      'Patterns are matched against the files in the experiment root directory.',
      'PLAN_NO_FILES',
    );
  }
  // A file name is a parameter value like any other: it is written into scripts and comments.
  for (const f of files) {
    const bad = controlCharIndex(f);
    if (bad >= 0) {
      throw planError(plan.fileName, p.domain.pos,
        `parameter "${p.name}": the file ${displayValue(f)} matched by ${patterns.map((x) => JSON.stringify(x)).join(' ')} has ${describeControlChar(f[bad]!)} in its name`,
        'Rename the file, or narrow the pattern so it does not match: parameter values must be one line of printable text.', 'PLAN_FILE_NAME');
    }
  }
  return files;
}

function decimals(text: string): number {
  const m = /^[+-]?\d*(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return 0;
  return Math.max(0, (m[1] ?? '').length - Number(m[2] ?? 0));
}

/** 15 significant digits is below double precision noise, so 0.1*3 prints as 0.3. */
function clean(v: number): string {
  return String(Number(v.toPrecision(15)));
}

// ── seeded PRNG ───────────────────────────────────────────────────────────

/** mulberry32 (Tommy Ettinger): small, fast, and well-known, which matters for reproducing a sweep elsewhere. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One stream per parameter name, so adding or reordering parameters does not change another's draws. */
function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 4294967296) >>> 0;
  return fmix32(h ^ fmix32(lo ^ fmix32(hi + 0x9e3779b9)));
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// ── substitution ──────────────────────────────────────────────────────────

type Compiled = (vars: Map<string, string>) => Command;

function compile(c: CommandNode): Compiled {
  switch (c.kind) {
    case 'copy':
      return (v) => ({ kind: 'copy', from: { loc: c.from.loc, path: subst(c.from.path, v) }, to: { loc: c.to.loc, path: subst(c.to.path, v) } });
    case 'exec':
      return (v) => ({ kind: 'exec', argv: c.argv.map((t) => subst(t, v)) });
    case 'shexec':
      return (v) => ({ kind: 'shexec', cmd: subst(c.cmd, v) });
    case 'onerror':
      return () => ({ kind: 'onerror', mode: c.mode });
    case 'redirect':
      return (v) => ({ kind: 'redirect', stream: c.stream, append: c.append, file: c.file ? subst(c.file, v) : null });
  }
}

/** Substituted values are never re-split or re-scanned: a value with spaces stays one argument. */
function subst(t: Template, vars: Map<string, string>): string {
  let s = '';
  for (const p of t.parts) s += p.kind === 'lit' ? p.text : (vars.get(p.name) ?? '');
  return s;
}
