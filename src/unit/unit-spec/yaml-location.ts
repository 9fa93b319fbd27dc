import { isAbsolute, relative } from 'node:path';
import {
  isAlias, isCollection, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, visit,
  type Document, type Node, type Pair, type ParsedNode, type Scalar, type YAMLError,
} from 'yaml';
import { VmwuError } from '../../errors.js';
import { escapeControlChars } from '../../control-chars.js';

/**
 * Positions and messages for YAML (and JSON, which YAML parses) inputs. Validators work on
 * plain JS values, so they only know the path of a bad value (`files[0].from`); this module
 * maps that path back to the node in the source, so every error can say file:line:col.
 */

export type YamlPath = readonly (string | number)[];

/** 1-based, as editors and compilers print them. */
export interface SourcePos {
  line: number;
  col: number;
}

export interface Problem {
  pos: SourcePos;
  path: YamlPath;
  message: string;
  hint?: string;
}

const DOC_START: SourcePos = { line: 1, col: 1 };

/** `files[0].from`; keys that are not plain words are quoted so the path stays unambiguous. */
export function formatPath(path: YamlPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/**
 * `file:line:col: path: message`, the path left out when the problem is about the whole
 * document. Always one line: messages quote the file's own text (a key, a name), which
 * may hold a newline or a terminal escape sequence, so control characters are escaped.
 */
export function formatProblem(file: string, p: Pick<Problem, 'pos' | 'path' | 'message'>): string {
  const field = formatPath(p.path);
  return escapeControlChars(`${file}:${p.pos.line}:${p.pos.col}: ${field ? `${field}: ` : ''}${p.message}`);
}

/**
 * Relative to the working directory when the file is under it, as compilers print paths:
 * short, and still clickable in a terminal or editor.
 */
export function displayPath(file: string, cwd = process.cwd()): string {
  const rel = relative(cwd, file);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : file;
}

/** Thrown with every problem found, in source order; `message` has one line per problem. */
export class LocatedError extends VmwuError {
  readonly file: string;
  readonly problems: readonly Problem[];
  constructor(code: string, file: string, problems: readonly Problem[]) {
    const sorted = [...problems].sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
    super(code, sorted.map((p) => formatProblem(file, p)).join('\n'), sorted[0]?.hint);
    this.name = 'LocatedError';
    this.file = file;
    this.problems = sorted;
  }
}

/** Optimal string alignment distance: a swap of two letters counts as one typo, not two. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest candidate, if it is close enough to be a typo rather than a different word. */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(w, c.toLowerCase());
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(Math.min(word.length, best.length) / 3)) ? best : undefined;
}

interface Step {
  /** The value node at this depth (null when the key exists with no value node). */
  node: Node | null;
  /** The pair holding it, when reached through a map key. */
  pair?: Pair;
}

/**
 * A parsed YAML file plus what is needed to point into it. Parse problems (syntax errors,
 * duplicate keys, unknown tags, dangling aliases) are returned by `parseProblems()`, not thrown,
 * so a caller can report them together with its own.
 */
export class YamlSource {
  readonly text: string;
  readonly file: string;
  readonly doc: Document.Parsed;
  readonly lines = new LineCounter();

  constructor(text: string, file: string) {
    this.text = text;
    this.file = file;
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: true, uniqueKeys: true });
  }

  posOfOffset(offset: number): SourcePos {
    return this.lines.linePos(offset);
  }

  /**
   * Walks `path` as far as it exists. Aliases are followed, so `*defaults` reaches the
   * anchored node's children; the last step is the alias itself, so a position points where
   * the user wrote it.
   */
  private walk(path: YamlPath): { steps: Step[]; complete: boolean } {
    const steps: Step[] = [{ node: (this.doc.contents as Node | null) ?? null }];
    for (const seg of path) {
      let cur = steps[steps.length - 1]!.node;
      if (isAlias(cur)) cur = cur.resolve(this.doc) ?? null;
      if (isMap(cur)) {
        const pair = cur.items.find((p) => keyText(p.key) === String(seg));
        if (!pair) return { steps, complete: false };
        steps.push({ node: (pair.value as Node | null) ?? null, pair });
      } else if (isSeq(cur) && typeof seg === 'number' && seg >= 0 && seg < cur.items.length) {
        steps.push({ node: (cur.items[seg] as Node | null) ?? null });
      } else {
        return { steps, complete: false };
      }
    }
    return { steps, complete: true };
  }

  /** The node at `path` (aliases resolved), or undefined when the path does not exist. */
  node(path: YamlPath): Node | undefined {
    const { steps, complete } = this.walk(path);
    if (!complete) return undefined;
    const n = steps[steps.length - 1]!.node;
    return (isAlias(n) ? n.resolve(this.doc) : n) ?? undefined;
  }

  has(path: YamlPath): boolean {
    return this.walk(path).complete;
  }

  /**
   * Where to point for `path`: the value's node; with `key`, the key's node (for "unknown
   * field"). For a path that does not exist (a missing required field) the closest existing
   * parent map, except that a missing top-level field points at the start of the document.
   * An empty value (`setup:` and nothing after) points at its key, not at the end of the line.
   */
  pos(path: YamlPath, opts: { key?: boolean } = {}): SourcePos {
    const { steps, complete } = this.walk(path);
    if (!complete) return steps.length === 1 ? DOC_START : this.nodeStart(steps[steps.length - 1]!.node);
    const last = steps[steps.length - 1]!;
    const keyNode = last.pair?.key as Node | undefined;
    if (keyNode && (opts.key || isEmptyNode(last.node))) return this.nodeStart(keyNode);
    return this.nodeStart(last.node);
  }

  /**
   * Position of character `index` of a scalar's value. Only exact where the value is the
   * source text verbatim (a one-line plain or escape-free quoted scalar); otherwise the
   * scalar's start, which is still the right line.
   */
  posInScalar(path: YamlPath, index: number): SourcePos {
    const n = this.node(path);
    const start = this.pos(path);
    if (!isScalar(n) || !n.range || typeof n.value !== 'string') return start;
    const src = this.text.slice(n.range[0], n.range[1]);
    if (src.includes('\n')) return start;
    if (n.type === 'PLAIN' && src === n.value) return this.posOfOffset(n.range[0] + index);
    if ((n.type === 'QUOTE_SINGLE' || n.type === 'QUOTE_DOUBLE') && src.slice(1, -1) === n.value) {
      return this.posOfOffset(n.range[0] + 1 + index);
    }
    return start;
  }

  /** The scalar's text as written: `-2.0` stays `-2.0`, where `toJS()` would give -2. */
  sourceText(path: YamlPath): string | undefined {
    const n = this.node(path);
    if (!isScalar(n)) return undefined;
    return (n as Scalar).source ?? (n.range ? this.text.slice(n.range[0], n.range[1]) : undefined);
  }

  /** The path of the deepest node whose source contains `offset`: it names the field a syntax error is in. */
  pathAt(offset: number): { path: (string | number)[]; pair?: Pair; inKey: boolean } {
    const path: (string | number)[] = [];
    let cur: unknown = this.doc.contents;
    for (;;) {
      if (isMap(cur)) {
        const pair = cur.items.find((p) => within(p.key, offset) || within(p.value, offset));
        if (!pair) break;
        path.push(keyText(pair.key));
        if (within(pair.key, offset)) return { path, pair, inKey: true };
        cur = pair.value;
      } else if (isSeq(cur)) {
        const i = cur.items.findIndex((it) => within(it, offset));
        if (i < 0) break;
        path.push(i);
        cur = cur.items[i];
      } else {
        break;
      }
    }
    return { path, inKey: false };
  }

  /** Parse errors, and warnings too: a spec YAML had to guess about is ambiguous. */
  parseProblems(): Problem[] {
    const out = [...this.doc.errors, ...this.doc.warnings].map((e) => this.yamlProblem(e));
    visit(this.doc, {
      // toJS() would stringify them (with a process warning); no config means one.
      Pair: (_key, pair) => {
        // Through an alias too: toJS() would stringify the map or list it names.
        if (isCollection(pair.key) || (isAlias(pair.key) && isCollection(pair.key.resolve(this.doc)))) {
          const at = (pair.key as ParsedNode).range?.[0] ?? 0;
          out.push({ pos: this.posOfOffset(at), path: this.pathAt(at).path.slice(0, -1), message: 'a key must be a plain value, not a list or map', hint: 'write the key as a word, like name:' });
        }
      },
      Alias: (_key, alias) => {
        if (!alias.resolve(this.doc)) {
          out.push({
            pos: this.nodeStart(alias), path: this.pathAt(alias.range?.[0] ?? 0).path,
            message: `alias *${alias.source} refers to no anchor before it`,
            hint: `define &${alias.source} on a value earlier in the file`,
          });
        }
      },
    });
    return out;
  }

  private yamlProblem(e: YAMLError): Problem {
    const pos = e.linePos?.[0] ?? this.posOfOffset(e.pos[0]);
    const where = this.pathAt(e.pos[0]);
    // The library's message repeats the position and a source excerpt; ours already has both.
    const text = e.message.split(/ at line \d+, column \d+/)[0]!.trim();
    switch (e.code) {
      case 'DUPLICATE_KEY': {
        const key = where.pair ? keyText(where.pair.key) : undefined;
        const parentPath = where.path.slice(0, -1);
        const parent = parentPath.length ? this.node(parentPath) : this.doc.contents;
        const first = key !== undefined && isMap(parent) ? parent.items.find((p) => keyText(p.key) === key) : undefined;
        const firstLine = first && first !== where.pair ? ` (first at line ${this.nodeStart(first.key as Node).line})` : '';
        return {
          pos, path: parentPath,
          message: `duplicate field \`${key ?? '?'}\`${firstLine}`,
          hint: 'each field may appear once in a map; keep one of them',
        };
      }
      case 'MULTIPLE_DOCS':
        return { pos, path: [], message: 'more than one YAML document (a second `---`)', hint: 'keep everything in one document' };
      case 'TAG_RESOLVE_FAILED': {
        // The tag precedes its node, so the field is found from what follows the tag; for
        // a tagged map that is its first key, one level too deep.
        let afterTag = e.pos[1];
        while (/\s/.test(this.text.charAt(afterTag))) afterTag++;
        const tagged = this.pathAt(afterTag);
        return { pos, path: tagged.inKey ? tagged.path.slice(0, -1) : tagged.path, message: text.replace(/^Unresolved tag/, 'unknown tag'), hint: 'leave out the !tag; plain values are typed by how they are written' };
      }
      default:
        // No field: a syntax error is often only noticed at the next token, which may
        // belong to the following field, and naming that one would mislead.
        return { pos, path: [], message: `YAML syntax: ${text.charAt(0).toLowerCase()}${text.slice(1)}`, hint: 'check the indentation, quotes and brackets around this position' };
    }
  }

  private nodeStart(n: Node | null | undefined): SourcePos {
    const start = (n as ParsedNode | null | undefined)?.range?.[0];
    return start === undefined ? DOC_START : this.posOfOffset(start);
  }
}

/**
 * A key as a path segment. A list or map key (refused by parseProblems) is named by its
 * kind only: the library's toString() of a map whose keys are maps renders each inner key
 * once per level, so `{{{{…: x` took seconds, then failed with a RangeError.
 */
function keyText(k: unknown): string {
  if (isScalar(k)) return String(k.value);
  if (isCollection(k)) return isMap(k) ? '{…}' : '[…]';
  return String(k);
}

function isEmptyNode(n: Node | null): boolean {
  if (n === null) return true;
  return isScalar(n) && n.value === null && (!n.range || n.range[0] === n.range[1]);
}

function within(n: unknown, offset: number): boolean {
  if (isPair(n)) return within(n.key, offset) || within(n.value, offset);
  const r = (n as ParsedNode | null | undefined)?.range;
  return !!r && offset >= r[0] && offset < Math.max(r[1], r[0] + 1);
}
