import type { z } from 'zod';
import { BaseObject, FileEntry, hintFor, Resources, SpecSchema } from './schema.js';
import { suggest, type Problem, type YamlPath, type YamlSource } from './yaml-location.js';

/** The wording of zod's complaints about a spec: each becomes a problem at its place in the file, with the field's hint. */

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

type Issue = z.core.$ZodIssue;

/** The problems one zod issue stands for, each at its place in the file; none where another issue says it better. */
export function issueProblems(src: YamlSource, data: unknown, issue: Issue, prefix: YamlPath): Problem[] {
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

/** A value as a message quotes it: its kind, or its text as written. */
export function describeValue(src: YamlSource, path: YamlPath, v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  return src.sourceText(path) ?? String(v);
}

function orList(items: string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}
