import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, resolve, sep } from 'node:path';
import picomatch from 'picomatch';
import { isMap, isScalar } from 'yaml';
import { z } from 'zod';
import { isVmwuError, VmwuError } from '../errors.js';
import { isInside } from '../paths.js';
import { controlCharIndex, describeControlChar, displayValue, hasControlChars } from '../control-chars.js';
import { checkParamName } from '../run/command.js';
import { parseDuration, parseSize } from '../quantities.js';
import { cpuNeeds } from '../vm/cpu.js';
import { formatDatasetRef, parseDatasetRef } from '../data/ref.js';
import { displayPath, LocatedError, suggest, YamlSource, type Problem, type YamlPath } from './yaml-location.js';

export type ParamType = 'int' | 'float' | 'string' | 'bool';

export interface UnitSpec {
  name: string;
  version: string;
  base: { name: string } | { arch: string; os: string };
  /** Deduplicated and sorted, so listing order does not change the build cache key. */
  packages: string[];
  /** `from` is absolute and inside `dir`; `to` is a normalised absolute guest path. */
  files: { from: string; to: string }[];
  setup: string | null;
  /** `${param}` references are left in place, to be substituted per run. */
  run: string[] | null;
  /** `default` is the value as written in the YAML (`-2.0`, not `-2`). */
  params: Record<string, { default: string; type: ParamType }>;
  outputs: string[];
  resources: { memoryMiB?: number; cpus?: number; timeoutMs?: number; scratchBytes?: number; rootBytes?: number };
  network: boolean;
  /** Datasets (`NAME[:VERSION]`, src/data/ref.ts) attached read-only at /data/NAME; resolved when a job runs. */
  data: string[];
  /** A file in the work dir the job reads on stdin (GVA's `phaser < input.pha`). */
  stdin: string | null;
  /** CPU features the unit needs (`cpu:` levels and names, normalized by src/vm/cpu.ts); empty: none stated. */
  cpu: string[];
  file: string;
  dir: string;
}

export const SPEC_FILE = 'vmwu.yaml';

const ScalarValue = z.union([z.string(), z.number(), z.boolean()]);
const BaseObject = z.strictObject({ arch: z.string(), os: z.string() });
const FileEntry = z.strictObject({ from: z.string(), to: z.string() });
const Resources = z.strictObject({
  memory: z.string().nullish(),
  cpus: z.number().int().positive().nullish(),
  timeout: z.union([z.string(), z.number()]).nullish(),
  scratch: z.string().nullish(),
  root: z.string().nullish(),
});
// Optional fields accept an empty value (`packages:` with nothing after it) as "not given".
const SpecSchema = z.strictObject({
  name: z.string(),
  version: z.union([z.string(), z.number()]),
  base: z.union([z.string(), BaseObject]),
  packages: z.array(z.string()).nullish(),
  files: z.array(FileEntry).nullish(),
  setup: z.string().nullish(),
  run: z.union([z.string(), z.array(ScalarValue)]).nullish(),
  params: z.record(z.string(), ScalarValue).nullish(),
  outputs: z.array(z.string()).nullish(),
  resources: Resources.nullish(),
  network: z.boolean().nullish(),
  cpu: z.union([z.string(), z.array(z.string())]).nullish(),
  data: z.array(z.string()).nullish(),
  stdin: z.string().nullish(),
});
type SpecInput = z.infer<typeof SpecSchema>;

/** Allowed keys per map, by path shape (indices as `[]`), for "did you mean" suggestions. */
const ALLOWED_KEYS: Record<string, readonly string[]> = {
  '': Object.keys(SpecSchema.shape),
  base: Object.keys(BaseObject.shape),
  'files/[]': Object.keys(FileEntry.shape),
  resources: Object.keys(Resources.shape),
};

/** Where zod's own type name would undersell the rule (cpus: 1.5 is a number, but not a valid one). */
const EXPECTED: Record<string, string> = {
  'resources/cpus': 'a whole number of at least 1',
};

const BASE_FORMS = 'base: tiny, base: debian:bookworm, or base: {arch: x86_64, os: linux}';
const FIELD_HINTS: Record<string, string> = {
  name: 'lowercase letters, digits, ".", "_" and "-", starting with a letter or digit, e.g. name: mandelbrot',
  version: 'e.g. version: 1.0.0',
  base: `one of: ${BASE_FORMS}`,
  packages: 'a list of Debian packages, e.g. packages: [python3, gcc]',
  files: 'a list of {from: path in this directory, to: absolute guest path}, e.g. files: [{from: ./src, to: /app}]',
  setup: 'a shell script run once at build time, e.g. setup: make -C /app',
  run: 'a command line (run: /app/prog ${n}) or an argv list (run: [/app/prog, "${n}"])',
  params: 'a map of name: default value, e.g. params: {rows: 100, xmin: -2.0}',
  outputs: 'a list of globs relative to the work dir, e.g. outputs: ["*.ppm", "logs/*.txt"]',
  resources: 'e.g. resources: {memory: 512M, cpus: 1, timeout: 10m, scratch: 50G, root: 8G}',
  data: 'a list of datasets (vmwu data add), e.g. data: [uniprot] or data: [pdb70:2024]',
  stdin: 'a file in the work dir the job reads on its standard input, e.g. stdin: input.pha',
  network: 'network: true or network: false',
  cpu: 'an x86-64 level and/or CPU features the unit needs, e.g. cpu: x86-64-v3 or cpu: [x86-64-v2, rdtscp]',
};
const TOP_HINT = `a unit spec is a map with name, version and base, and optionally ${Object.keys(SpecSchema.shape).slice(3).join(', ')}`;

const NAME_RE = /^[a-z0-9][a-z0-9._-]*$/;
const VERSION_RE = /^\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]+)?$/;
const PACKAGE_RE = /^([a-z0-9][a-z0-9+.-]+)(=[0-9][A-Za-z0-9.+~:-]*)?$/;
const INT_SOURCE_RE = /^[-+]?(\d+|0x[0-9a-fA-F]+|0o[0-7]+)$/;

/** Reads `dir/vmwu.yaml`, or the file itself when given one. */
export function loadUnitSpec(pathOrDir: string): UnitSpec {
  let file = resolve(pathOrDir);
  try {
    if (statSync(file).isDirectory()) file = join(file, SPEC_FILE);
  } catch {
    throw new VmwuError('NO_SPEC', `${displayPath(file)}: no such file or directory`, `give a unit directory or its ${SPEC_FILE}`);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new VmwuError('NO_SPEC', `${displayPath(file)}: no such file`,
        `a unit directory holds a ${SPEC_FILE}; see examples/mandelbrot/${SPEC_FILE}`);
    }
    throw new VmwuError('NO_SPEC', `${displayPath(file)}: cannot read it (${code ?? String(e)})`, undefined, { cause: e });
  }
  return parseUnitSpec(text, file);
}

/** Validates a spec's text. The filesystem is only touched to check that `files[].from` exist and stay inside the directory. */
export function parseUnitSpec(text: string, file: string): UnitSpec {
  const absFile = resolve(file);
  const shown = displayPath(absFile);
  const src = new YamlSource(text, absFile);

  const syntax = src.parseProblems();
  if (syntax.length) throw new LocatedError('SPEC_SYNTAX', shown, syntax);

  const root = src.doc.contents;
  if (root === null) {
    throw new LocatedError('BAD_SPEC', shown, [{ pos: { line: 1, col: 1 }, path: [], message: 'the spec is empty', hint: TOP_HINT }]);
  }
  let data: unknown;
  try {
    data = src.doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new LocatedError('BAD_SPEC', shown, [{ pos: { line: 1, col: 1 }, path: [], message: (e as Error).message, hint: 'avoid deeply nested aliases' }]);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new LocatedError('BAD_SPEC', shown, [{ pos: src.pos([]), path: [], message: `expected a map of fields, got ${describeValue(src, [], data)}`, hint: TOP_HINT }]);
  }

  const parsed = SpecSchema.safeParse(data);
  if (!parsed.success) {
    throw new LocatedError('BAD_SPEC', shown, parsed.error.issues.flatMap((i) => issueProblems(src, data, i, [])));
  }
  const problems: Problem[] = [];
  const spec = buildSpec(src, parsed.data, absFile, problems);
  if (problems.length) throw new LocatedError('BAD_SPEC', shown, problems);
  return spec;
}

/**
 * What decides the built image, as canonical JSON (sorted keys, no whitespace), for the
 * build cache key. Name, version and everything used only at run time are left out, so
 * units that build the same image share it. `files` are named relative to the spec's
 * directory so moving the unit keeps the key; the caller adds the files' content hashes
 * and the resolved base's digest, which this cannot know.
 */
export function buildKeyMaterial(spec: UnitSpec): string {
  return canonicalJson({
    format: 1,
    base: 'name' in spec.base ? { name: spec.base.name } : { arch: spec.base.arch, os: spec.base.os },
    packages: [...new Set(spec.packages)].sort(),
    files: spec.files.map((f) => ({ from: relative(spec.dir, f.from).split(sep).join('/') || '.', to: f.to })),
    setup: spec.setup,
  });
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export class CommandLineError extends Error {
  readonly index: number;
  readonly hint: string;
  constructor(message: string, index: number, hint: string) {
    super(message);
    this.index = index;
    this.hint = hint;
  }
}

const SHELL_HINT = 'run is not given to a shell: quote the character to pass it as an argument, or write run: [sh, -c, "..."]';

/**
 * Splits a command line into argv the way sh would, minus every expansion: quotes and
 * backslashes group and escape, `${x}` stays literal for per-run substitution. Unquoted
 * operators (`>`, `|`, `;`, ...) and line breaks are refused rather than passed on as
 * arguments, since whoever wrote them expected a shell.
 */
export function splitCommandLine(line: string): string[] {
  const argv: string[] = [];
  let word = '';
  let inWord = false;
  const endWord = () => {
    if (inWord) argv.push(word);
    word = '';
    inWord = false;
  };
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      endWord();
      i++;
    } else if (c === '\n' || c === '\r') {
      // A `|` block scalar ends in a newline; only a second line is a problem.
      if (line.slice(i).trim() !== '') {
        throw new CommandLineError('has more than one line', i,
          'run is one command: end a line with \\ to continue it, or put a script in a file (or setup) and run that');
      }
      break;
    } else if (c === '\\') {
      const next = line[i + 1];
      if (next === undefined) throw new CommandLineError('ends with a lone backslash', i, 'remove it, or write \\\\ for a backslash');
      if (next !== '\n') {
        word += next;
        inWord = true;
      }
      i += 2;
    } else if (c === "'") {
      const close = line.indexOf("'", i + 1);
      if (close < 0) throw new CommandLineError("has an unterminated ' quote", i, "close it with another '");
      word += line.slice(i + 1, close);
      inWord = true;
      i = close + 1;
    } else if (c === '"') {
      const open = i++;
      inWord = true;
      for (;;) {
        if (i >= line.length) throw new CommandLineError('has an unterminated " quote', open, 'close it with another "');
        const d = line[i]!;
        if (d === '"') {
          i++;
          break;
        }
        // As in sh: inside double quotes a backslash escapes only these.
        if (d === '\\' && i + 1 < line.length && '\\"$`\n'.includes(line[i + 1]!)) {
          if (line[i + 1] !== '\n') word += line[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
    } else if ('|&;<>()`'.includes(c) || (c === '$' && line[i + 1] === '(')) {
      throw new CommandLineError(`\`${c === '$' ? '$(' : c}\` is shell syntax`, i, SHELL_HINT);
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  endWord();
  return argv;
}

function buildSpec(src: YamlSource, d: SpecInput, file: string, problems: Problem[]): UnitSpec {
  const dir = dirname(file);
  const bad = (path: YamlPath, message: string, hint?: string, opts: { key?: boolean } = {}) => {
    problems.push({ pos: src.pos(path, opts), path, message, hint: hint ?? hintFor(path) });
  };

  if (!NAME_RE.test(d.name) || d.name.length > 64) {
    bad(['name'], `${JSON.stringify(d.name)} is not a valid unit name`, `${FIELD_HINTS.name}; at most 64 characters`);
  }

  const version = typeof d.version === 'number' ? src.sourceText(['version']) ?? String(d.version) : d.version;
  if (!VERSION_RE.test(version)) bad(['version'], `${JSON.stringify(version)} is not a version`, 'e.g. version: 1.0.0, 2.1 or 1.0.0-rc1');

  let base: UnitSpec['base'];
  if (typeof d.base === 'string') {
    base = { name: d.base.trim() };
    if (!base.name || /\s/.test(base.name)) bad(['base'], `${JSON.stringify(d.base)} is not a base name`);
  } else {
    base = { arch: d.base.arch.trim(), os: d.base.os.trim() };
    for (const k of ['arch', 'os'] as const) {
      if (!base[k] || /\s/.test(base[k])) bad(['base', k], `${JSON.stringify(d.base[k])} is not a valid ${k}`);
    }
  }

  const packages = new Map<string, { text: string; index: number }>();
  (d.packages ?? []).forEach((p, i) => {
    const m = PACKAGE_RE.exec(p);
    if (!m) {
      bad(['packages', i], `${JSON.stringify(p)} is not a Debian package name`,
        'package names are lowercase letters, digits, "+", "-" and "."; pin a version with name=version');
      return;
    }
    const seen = packages.get(m[1]!);
    if (!seen) packages.set(m[1]!, { text: p, index: i });
    else if (seen.text !== p) bad(['packages', i], `${m[1]} is listed twice with different versions (also packages[${seen.index}]: ${seen.text})`, 'keep one of them');
  });

  const files = checkFiles(d.files ?? [], dir, bad);
  const setup = d.setup == null || d.setup.trim() === '' ? null : `${d.setup.replace(/\s+$/, '')}\n`;
  const params = checkParams(src, d.params ?? {}, bad);
  const run = checkRun(src, d.run, params, problems, bad);

  const outputs: string[] = [];
  (d.outputs ?? []).forEach((g, i) => {
    const glob = g.replace(/^(\.\/)+/, '');
    const path = ['outputs', i];
    if (!glob) return bad(path, 'empty glob');
    if (glob.startsWith('/')) return bad(path, `${JSON.stringify(g)} is an absolute path`);
    if (glob.startsWith('!')) return bad(path, `${JSON.stringify(g)}: negated globs are not supported`);
    if (glob.split('/').includes('..')) return bad(path, `${JSON.stringify(g)} reaches outside the work dir with ..`);
    try {
      picomatch.makeRe(glob, { strictBrackets: true });
    } catch (e) {
      return bad(path, `${JSON.stringify(g)} is not a valid glob (${(e as Error).message})`);
    }
    if (!outputs.includes(glob)) outputs.push(glob);
  });

  const resources: UnitSpec['resources'] = {};
  const r = d.resources ?? {};
  if (r.memory != null) {
    try {
      const mib = Math.round(parseSize(r.memory) / 1024 ** 2);
      if (mib < 1) bad(['resources', 'memory'], `${JSON.stringify(r.memory)} is less than 1 MiB`, 'sizes are in bytes unless given a unit: write 512M or 2G');
      else resources.memoryMiB = mib;
    } catch (e) {
      bad(['resources', 'memory'], `${JSON.stringify(r.memory)} is not a size`, isVmwuError(e) ? e.hint : undefined);
    }
  }
  if (r.cpus != null) resources.cpus = r.cpus;
  for (const [key, field] of [['scratch', 'scratchBytes'], ['root', 'rootBytes']] as const) {
    const v = r[key];
    if (v == null) continue;
    try {
      const bytes = parseSize(v);
      if (bytes < 1024 ** 2) bad(['resources', key], `${JSON.stringify(v)} is less than 1 MiB`, 'write it like 50G');
      else resources[field] = bytes;
    } catch (e) {
      bad(['resources', key], `${JSON.stringify(v)} is not a size`, isVmwuError(e) ? e.hint : undefined);
    }
  }
  if (r.timeout != null) {
    const t = String(r.timeout);
    try {
      const ms = parseDuration(t);
      if (ms <= 0) bad(['resources', 'timeout'], `${JSON.stringify(t)} is not a positive duration`, 'write it like 30s, 10m or 1h30m');
      else resources.timeoutMs = ms;
    } catch (e) {
      bad(['resources', 'timeout'], `${JSON.stringify(t)} is not a duration`, isVmwuError(e) ? e.hint : undefined);
    }
  }

  let cpu: string[] = [];
  const cpuItems = d.cpu == null ? [] : typeof d.cpu === 'string' ? d.cpu.split(/[\s,]+/).filter(Boolean) : d.cpu;
  cpuItems.forEach((item, i) => {
    try {
      cpu = [...new Set([...cpu, ...cpuNeeds([item], 'cpu')])].sort();
    } catch (e) {
      bad(typeof d.cpu === 'string' ? ['cpu'] : ['cpu', i], `${JSON.stringify(item)} is neither an x86-64 level nor a CPU feature name`, isVmwuError(e) ? e.hint : undefined);
    }
  });

  const data: string[] = [];
  (d.data ?? []).forEach((ref, i) => {
    try {
      const r = parseDatasetRef(ref, 'data');
      if (data.some((x) => parseDatasetRef(x).name === r.name)) bad(['data', i], `dataset ${r.name} is listed twice`, 'each dataset appears once, at /data/NAME');
      else data.push(formatDatasetRef(r));
    } catch (e) {
      bad(['data', i], `${JSON.stringify(ref)} is not a dataset name`, isVmwuError(e) ? e.hint : undefined);
    }
  });
  let stdin: string | null = null;
  if (d.stdin != null) {
    const f = d.stdin.replace(/^(\.\/)+/, '');
    if (!f || f.startsWith('/') || f.split('/').includes('..')) bad(['stdin'], `${JSON.stringify(d.stdin)} is not a path inside the work dir`, 'name a file the job finds in its work dir (staged in by --input or a plan\'s copy)');
    else stdin = f;
  }

  return {
    name: d.name, version, base, packages: [...packages.values()].map((p) => p.text).sort(),
    files, setup, run, params, outputs, resources, network: d.network ?? false, data, stdin, cpu, file, dir,
  };
}

type Bad = (path: YamlPath, message: string, hint?: string, opts?: { key?: boolean }) => void;

function checkFiles(entries: { from: string; to: string }[], dir: string, bad: Bad): UnitSpec['files'] {
  const out: UnitSpec['files'] = [];
  const targets = new Map<string, number>();
  let realDir: string | undefined;
  const outsideHint = `files are imported from the spec's directory (${displayPath(dir)}) and below: move them there, or move ${SPEC_FILE} up`;
  entries.forEach((f, i) => {
    let ok = true;
    const fromPath = ['files', i, 'from'];
    const from = resolve(dir, f.from);
    if (!f.from.trim()) {
      bad(fromPath, 'empty path');
      ok = false;
    } else if (!isInside(resolve(dir), from)) {
      bad(fromPath, `${JSON.stringify(f.from)} points outside the spec's directory`, outsideHint);
      ok = false;
    } else if (!existsSync(from)) {
      bad(fromPath, `${JSON.stringify(f.from)} does not exist (${from})`, `paths in from are relative to the directory holding ${SPEC_FILE}`);
      ok = false;
    } else {
      // Lexically inside is not enough: a symlink in the unit could lead anywhere on the host.
      realDir ??= realpathSync(dir);
      const real = realpathSync(from);
      if (!isInside(realDir, real)) {
        bad(fromPath, `${JSON.stringify(f.from)} is a link to ${real}, outside the spec's directory`, outsideHint);
        ok = false;
      }
    }

    const toPath = ['files', i, 'to'];
    const to = posix.normalize(f.to).replace(/\/+$/, '');
    if (!f.to.startsWith('/')) {
      bad(toPath, `${JSON.stringify(f.to)} is not an absolute guest path`, 'write it like /app or /opt/data');
      ok = false;
    } else if (f.to.split('/').includes('..')) {
      bad(toPath, `${JSON.stringify(f.to)} contains ..`, 'write the guest path without ..');
      ok = false;
    } else if (f.to.includes('\0')) {
      bad(toPath, 'contains a NUL character');
      ok = false;
    } else if (to === '') {
      bad(toPath, 'cannot import over the guest\'s root directory', 'give a directory under it, like /app');
      ok = false;
    } else if (targets.has(to)) {
      bad(toPath, `${to} is already the target of files[${targets.get(to)}]`, 'give each import its own guest path');
      ok = false;
    }
    if (ok) {
      targets.set(to, i);
      out.push({ from, to });
    }
  });
  return out;
}

function checkParams(src: YamlSource, input: Record<string, string | number | boolean>, bad: Bad): UnitSpec['params'] {
  const params: UnitSpec['params'] = {};
  // A JS object cannot hold every YAML key (`__proto__` sets the prototype instead), so
  // names are checked against the map as written: none may silently disappear.
  const node = src.node(['params']);
  for (const key of isMap(node) ? node.items.map((p) => (isScalar(p.key) ? String(p.key.value) : '')) : []) {
    if (!Object.hasOwn(input, key)) bad(['params', key], `${JSON.stringify(key)} cannot be used as a parameter name`, 'choose another name', { key: true });
  }
  for (const [name, value] of Object.entries(input)) {
    const path = ['params', name];
    try {
      checkParamName(name, 'params');
    } catch (e) {
      if (!isVmwuError(e)) throw e;
      bad(path, e.message.replace(/^params: /, ''), e.hint ?? 'VMWU_ names are set by vmwu itself; choose another name', { key: true });
      continue;
    }
    if (typeof value === 'boolean') {
      params[name] = { default: String(value), type: 'bool' };
    } else if (typeof value === 'number') {
      const text = src.sourceText(path) ?? String(value);
      params[name] = { default: text, type: INT_SOURCE_RE.test(text) ? 'int' : 'float' };
    } else if (hasControlChars(value)) {
      // The default is exported into the guest and written into job scripts: one line of text.
      const i = controlCharIndex(value);
      bad(path, `${displayValue(value)} contains ${describeControlChar(value[i]!)}`, 'a param default must be one line of printable text: no newlines, tabs or other control characters');
    } else {
      params[name] = { default: value, type: 'string' };
    }
  }
  return params;
}

function checkRun(src: YamlSource, input: SpecInput['run'], params: UnitSpec['params'], problems: Problem[], bad: Bad): string[] | null {
  if (input == null) return null;
  let argv: string[];
  // Each word with where its text sits in the YAML, to point at an undeclared ${name}.
  const words: { text: string; path: YamlPath }[] = [];
  if (typeof input === 'string') {
    try {
      argv = splitCommandLine(input);
    } catch (e) {
      if (!(e instanceof CommandLineError)) throw e;
      problems.push({ pos: src.posInScalar(['run'], e.index), path: ['run'], message: `the command ${e.message}`, hint: e.hint });
      return null;
    }
    words.push({ text: input, path: ['run'] });
  } else {
    argv = input.map((w, i) => (typeof w === 'string' ? w : src.sourceText(['run', i]) ?? String(w)));
    argv.forEach((w, i) => words.push({ text: w, path: ['run', i] }));
  }
  if (argv.length === 0) {
    bad(['run'], 'empty command', 'leave run out to give the command at run time, or give one here');
    return null;
  }
  const declared = Object.keys(params);
  for (const { text, path } of words) {
    for (const m of text.matchAll(/\$\{([^{}]*)\}/g)) {
      const name = m[1]!;
      if (Object.hasOwn(params, name)) continue;
      const close = suggest(name, declared);
      problems.push({
        pos: src.posInScalar(path, m.index), path: ['run'],
        message: `\${${name}} is not a declared param`,
        hint: (close ? `did you mean \${${close}}? ` : '') +
          `declare it with a default under params (params: {${/^[A-Za-z_]\w*$/.test(name) ? name : 'name'}: ...}); ` +
          'for a variable of a shell in the guest write $name without braces',
      });
    }
  }
  return argv;
}

type Issue = z.core.$ZodIssue;

function issueProblems(src: YamlSource, data: unknown, issue: Issue, prefix: YamlPath): Problem[] {
  const path = [...prefix, ...(issue.path as (string | number)[])];
  const hint = hintFor(path);
  const input = valueAt(data, path);

  if (issue.code === 'unrecognized_keys') {
    const allowed = ALLOWED_KEYS[shapeOf(path)] ?? [];
    return issue.keys.map((key) => {
      const close = suggest(key, allowed);
      return {
        pos: src.pos([...path, key], { key: true }), path, message: `unknown field \`${key}\``,
        hint: close ? `did you mean ${close}?` : `allowed here: ${allowed.join(', ')}`,
      };
    });
  }
  if (input === undefined && (issue.code === 'invalid_type' || issue.code === 'invalid_union')) {
    // `too: /app` yields both "to: required" and "unknown field too"; the second says it all.
    const parentPath = path.slice(0, -1);
    const parent = valueAt(data, parentPath);
    const allowed = ALLOWED_KEYS[shapeOf(parentPath)] ?? [];
    const misspelt = parent !== null && typeof parent === 'object' &&
      Object.keys(parent).some((k) => !allowed.includes(k) && suggest(k, allowed) === path[path.length - 1]);
    return misspelt ? [] : [{ pos: src.pos(path), path, message: 'required', hint }];
  }
  if (issue.code === 'invalid_union') {
    // A branch that failed on the value's own type is not what the user meant; the one
    // that got further is, and its complaints are the useful ones.
    const wrongType = (branch: Issue[]) => branch.some((i) => i.code === 'invalid_type' && i.path.length === 0);
    const meant = issue.errors.find((b) => !wrongType(b));
    if (meant) return meant.flatMap((i) => issueProblems(src, data, i, path));
    const expected = [...new Set(issue.errors.flatMap((b) => b.flatMap((i) => (i.code === 'invalid_type' && i.path.length === 0 ? [describeExpected(i.expected)] : []))))];
    return [{ pos: src.pos(path), path, message: `expected ${orList(expected)}, got ${describeValue(src, path, input)}`, hint }];
  }
  const wanted = EXPECTED[shapeOf(path)];
  if (wanted && (issue.code === 'invalid_type' || issue.code === 'too_small')) {
    return [{ pos: src.pos(path), path, message: `expected ${wanted}, got ${describeValue(src, path, input)}`, hint }];
  }
  if (issue.code === 'invalid_type') {
    return [{ pos: src.pos(path), path, message: `expected ${describeExpected(issue.expected)}, got ${describeValue(src, path, input)}`, hint }];
  }
  if (issue.code === 'too_small' && issue.origin === 'number') {
    const bound = `${issue.inclusive ? 'at least' : 'more than'} ${String(issue.minimum)}`;
    return [{ pos: src.pos(path), path, message: `must be ${bound}, got ${describeValue(src, path, input)}`, hint }];
  }
  return [{ pos: src.pos(path), path, message: issue.message, hint }];
}

/** A path with indices as `[]`: the key of the tables above. */
function shapeOf(path: YamlPath): string {
  return path.map((s) => (typeof s === 'number' ? '[]' : s)).join('/');
}

function hintFor(path: YamlPath): string {
  return FIELD_HINTS[String(path[0])] ?? TOP_HINT;
}

function valueAt(data: unknown, path: YamlPath): unknown {
  let v = data;
  for (const seg of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, seg)) return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

function describeExpected(t: string): string {
  const names: Record<string, string> = {
    string: 'a string', number: 'a number', int: 'a whole number', boolean: 'true/false',
    array: 'a list', object: 'a map', record: 'a map', null: 'nothing',
  };
  return names[t] ?? t;
}

function describeValue(src: YamlSource, path: YamlPath, v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return src.sourceText(path) ?? String(v);
}

function orList(items: string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}
