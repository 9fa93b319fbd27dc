import { dirname } from 'node:path';
import picomatch from 'picomatch';
import { isMap, isScalar } from 'yaml';
import { isVmwuError } from '../../errors.js';
import { controlCharIndex, describeControlChar, displayValue, hasControlChars } from '../../control-chars.js';
import { checkParamName } from '../../run/command.js';
import { parseDuration, parseSize } from '../../quantities.js';
import { cpuNeeds } from '../../vm/cpu.js';
import { formatDatasetRef, parseDatasetRef } from '../../data/ref.js';
import { CommandLineError, splitCommandLine } from './command-line.js';
import { checkFiles } from './files.js';
import { FIELD_HINTS, hintFor, type Bad, type SpecInput, type UnitSpec } from './schema.js';
import { suggest, type Problem, type YamlPath, type YamlSource } from './yaml-location.js';

/** From a spec that fits the schema to a UnitSpec: each field's own rules, every broken one a problem at its place in the file. */

const NAME_RE = /^[a-z0-9][a-z0-9._-]*$/;
const VERSION_RE = /^\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]+)?$/;
const PACKAGE_RE = /^([a-z0-9][a-z0-9+.-]+)(=[0-9][A-Za-z0-9.+~:-]*)?$/;
const INT_SOURCE_RE = /^[-+]?(\d+|0x[0-9a-fA-F]+|0o[0-7]+)$/;

/** Adds every problem to `problems`, which the caller reports together; the result counts only when there are none. */
export function buildSpec(src: YamlSource, d: SpecInput, file: string, problems: Problem[]): UnitSpec {
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
  // A job of N VMs on a private network (--nodes): the schema bounds it (one /24).
  if (r.nodes != null) resources.nodes = r.nodes;
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
