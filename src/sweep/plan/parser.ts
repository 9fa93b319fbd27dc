import { controlCharIndex, describeControlChar, displayValue } from '../../control-chars.js';
import { Lexer, planError, type Part, type Pos, type Token } from './lexer.js';

export type { Part, Pos } from './lexer.js';

/** A plan file parsed into its parameters and its task (Nimrod/G and classic dialects), every domain checked at its position before any job is expanded. */

export type ParamType = 'float' | 'integer' | 'text' | 'files';
export type Location = 'root' | 'node';

export interface ValueLit {
  text: string;
  pos: Pos;
}
export interface NumberLit extends ValueLit {
  value: number;
}

export type Domain =
  | { kind: 'default'; value: ValueLit; pos: Pos }
  | { kind: 'range'; from: NumberLit; to: NumberLit; step: NumberLit; pos: Pos }
  | { kind: 'points'; from: NumberLit; to: NumberLit; points: NumberLit; pos: Pos }
  | { kind: 'random'; from: NumberLit; to: NumberLit; points: NumberLit | null; pos: Pos }
  | { kind: 'anyof'; values: ValueLit[]; pos: Pos }
  | { kind: 'oneof'; values: ValueLit[]; default: ValueLit | null; pos: Pos };

export interface PlanParameter {
  name: string;
  label: string | null;
  type: ParamType;
  domain: Domain;
  pos: Pos;
}

export interface Template {
  parts: Part[];
  pos: Pos;
}
export interface PathRef {
  loc: Location;
  path: Template;
}

export type CommandNode =
  | { kind: 'copy'; from: PathRef; to: PathRef; pos: Pos }
  | { kind: 'exec'; argv: Template[]; pos: Pos }
  | { kind: 'shexec'; cmd: Template; pos: Pos }
  | { kind: 'onerror'; mode: 'fail' | 'ignore'; pos: Pos }
  | { kind: 'redirect'; stream: 'stdout' | 'stderr'; append: boolean; file: Template | null; pos: Pos };

export interface Plan {
  fileName: string;
  /** Informational: `classic` when a `;` terminator or `node:execute` was seen. Both parse with one grammar. */
  dialect: 'nimrodg' | 'classic';
  parameters: PlanParameter[];
  task: { name: 'main'; pos: Pos; commands: CommandNode[] };
}

export const IMPLICIT_VARIABLES = ['jobindex', 'nimrod_jobindex'] as const;

const TYPES = ['float', 'integer', 'text', 'files'];
const TOP_LEVEL = ['parameter', 'task'];
const COMMANDS = ['copy', 'exec', 'shexec', 'node:execute', 'onerror', 'redirect', 'endtask'];
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

export function parsePlan(text: string, fileName: string): Plan {
  return new Parser(text, fileName).plan();
}

class Parser {
  private readonly lexer: Lexer;
  private tok: Token;
  private prevEnd: Pos = { line: 1, col: 1 };
  private classic = false;

  constructor(
    text: string,
    private readonly fileName: string,
  ) {
    this.lexer = new Lexer(text, fileName);
    this.tok = this.lexer.next();
  }

  private fail(pos: Pos, message: string, hint?: string): never {
    throw planError(this.fileName, pos, message, hint);
  }

  private advance(): Token {
    const t = this.tok;
    this.prevEnd = t.end;
    this.tok = this.lexer.next();
    if (this.tok.kind === 'semi') this.classic = true;
    return t;
  }

  /** Errors about a missing item point just past the last token, not at the next line. */
  private where(): Pos {
    return this.tok.kind === 'eol' || this.tok.kind === 'eof' ? this.prevEnd : this.tok.pos;
  }

  private found(): string {
    const t = this.tok;
    if (t.kind === 'word') return `"${t.raw}"`;
    return t.kind === 'semi' ? '";"' : t.kind === 'eol' ? 'end of line' : 'end of file';
  }

  private isKw(kw: string): boolean {
    return this.tok.kind === 'word' && this.tok.raw === kw;
  }

  private atEnd(): boolean {
    return this.tok.kind !== 'word';
  }

  private expectKw(kw: string): void {
    if (!this.isKw(kw)) this.fail(this.where(), `expected "${kw}", found ${this.found()}`);
    this.advance();
  }

  private expectWord(what: string): Extract<Token, { kind: 'word' }> {
    if (this.tok.kind !== 'word') this.fail(this.where(), `expected ${what}, found ${this.found()}`);
    return this.advance() as Extract<Token, { kind: 'word' }>;
  }

  private endOfStatement(): void {
    if (!this.atEnd()) this.fail(this.tok.pos, `unexpected ${this.found()}: expected end of statement`);
  }

  private skipBlankStatements(): void {
    while (this.tok.kind === 'eol' || this.tok.kind === 'semi') this.advance();
  }

  plan(): Plan {
    const parameters: PlanParameter[] = [];
    let task: Plan['task'] | null = null;
    for (;;) {
      this.skipBlankStatements();
      if (this.tok.kind === 'eof') break;
      if (this.isKw('parameter')) {
        const p = this.parameter();
        const dup = parameters.find((q) => q.name === p.name);
        if (dup) this.fail(p.pos, `duplicate parameter "${p.name}" (first declared at ${dup.pos.line}:${dup.pos.col})`, 'Each parameter name may be declared once.');
        parameters.push(p);
      } else if (this.isKw('task')) {
        const at = this.tok.pos;
        if (task) this.fail(at, `duplicate task main (first declared at ${task.pos.line}:${task.pos.col})`, 'A plan has exactly one `task main`.');
        task = this.task();
      } else {
        const t = this.expectWord('"parameter" or "task"');
        this.fail(t.pos, `unknown statement "${t.raw}": expected ${listOf(TOP_LEVEL)}${didYouMean(t.raw, TOP_LEVEL)}`);
      }
    }
    if (!task) this.fail(this.tok.pos, 'no "task main" in the plan', 'Add `task main` … `endtask` with the commands each job runs.');
    const plan: Plan = { fileName: this.fileName, dialect: this.classic ? 'classic' : 'nimrodg', parameters, task };
    this.checkVariables(plan);
    return plan;
  }

  // ── parameters ──────────────────────────────────────────────────────────

  private parameter(): PlanParameter {
    this.advance();
    const nameTok = this.expectWord('a parameter name');
    if (!IDENT.test(nameTok.raw)) this.fail(nameTok.pos, `bad parameter name "${nameTok.raw}": use letters, digits and _ (not starting with a digit)`);
    const name = nameTok.raw;
    if ((IMPLICIT_VARIABLES as readonly string[]).includes(name) || name === '__proto__') {
      this.fail(nameTok.pos, `"${name}" is reserved and cannot be a parameter name`);
    }
    let label: string | null = null;
    if (this.isKw('label')) {
      this.advance();
      label = this.value('a quoted label').text;
    }
    const typeTok = this.expectWord(`a type (${listOf(TYPES)})`);
    if (!TYPES.includes(typeTok.raw)) this.fail(typeTok.pos, `unknown type "${typeTok.raw}": expected ${listOf(TYPES)}${didYouMean(typeTok.raw, TYPES)}`);
    const type = typeTok.raw as ParamType;
    const domain = this.domain();
    this.endOfStatement();
    checkDomain(type, domain, (pos, msg) => this.fail(pos, `parameter "${name}": ${msg}`));
    return { name, label, type, domain, pos: nameTok.pos };
  }

  private domain(): Domain {
    const pos = this.where();
    if (this.isKw('default')) {
      this.advance();
      return { kind: 'default', value: this.value('a value'), pos };
    }
    if (this.isKw('range')) {
      this.advance();
      const [from, to] = this.bounds();
      if (this.isKw('step')) {
        this.advance();
        return { kind: 'range', from, to, step: this.number(), pos };
      }
      if (this.isKw('points')) {
        this.advance();
        return { kind: 'points', from, to, points: this.number(), pos };
      }
      if (!this.atEnd()) this.fail(this.tok.pos, `expected "step" or "points", found ${this.found()}`);
      // Nimrod/G treats a range without step or points as step 1.
      return { kind: 'range', from, to, step: { text: '1', value: 1, pos: to.pos }, pos };
    }
    if (this.isKw('random')) {
      this.advance();
      const [from, to] = this.bounds();
      let points: NumberLit | null = null;
      if (this.isKw('points')) {
        this.advance();
        points = this.number();
      }
      return { kind: 'random', from, to, points, pos };
    }
    if (this.isKw('select')) {
      this.advance();
      const mode = this.tok.kind === 'word' ? this.tok.raw : '';
      if (mode !== 'anyof' && mode !== 'oneof') this.fail(this.where(), `expected "anyof" or "oneof", found ${this.found()}`);
      this.advance();
      const values: ValueLit[] = [];
      while (!this.atEnd() && !(mode === 'oneof' && this.isKw('default'))) values.push(this.value('a value'));
      if (values.length === 0) this.fail(this.where(), `expected at least one value after "${mode}", found ${this.found()}`);
      if (mode === 'anyof') return { kind: 'anyof', values, pos };
      let def: ValueLit | null = null;
      if (this.isKw('default')) {
        this.advance();
        def = this.value('a value');
      }
      return { kind: 'oneof', values, default: def, pos };
    }
    if (this.tok.kind === 'word') return { kind: 'default', value: this.value('a value'), pos };
    this.fail(pos, `expected a domain (default VALUE, range from …, random from … or select anyof|oneof …), found ${this.found()}`);
  }

  private bounds(): [NumberLit, NumberLit] {
    this.expectKw('from');
    const from = this.number();
    this.expectKw('to');
    return [from, this.number()];
  }

  /**
   * Parameter values are literal: a variable there would make the domain depend on itself.
   * They are one line of printable text: a value becomes a job's parameter, which is
   * written into job scripts, batch scripts and submit descriptions, where a newline
   * would start a line of its own (a command, or a directive).
   */
  private value(what: string): ValueLit {
    const t = this.expectWord(what);
    let text = '';
    for (const p of t.parts) {
      if (p.kind === 'var') this.fail(p.pos, `variables cannot be used in parameter values ($${p.name})`, 'Write $$ for a literal $.');
      text += p.text;
    }
    const bad = controlCharIndex(text);
    if (bad >= 0) {
      throw planError(this.fileName, t.pos, `${displayValue(text)} contains ${describeControlChar(text[bad]!)}: parameter values and labels must be one line of printable text`,
        'Remove the escape (\\n, \\t, \\x…) or the control character from the value; a job that needs one can build it in its shell command.', 'PLAN_VALUE');
    }
    return { text, pos: t.pos };
  }

  private number(): NumberLit {
    if (this.tok.kind !== 'word' || !NUMBER.test(this.tok.raw)) this.fail(this.where(), `expected a number, found ${this.found()}`);
    const v = this.value('a number');
    const value = Number(v.text);
    // 1e999 is a number to the grammar but Infinity to arithmetic: jobs would get "Infinity" and "NaN".
    if (!Number.isFinite(value)) this.fail(v.pos, `number ${v.text} is out of range`, 'Numbers must be below 1.8e308 in size.');
    return { ...v, value };
  }

  // ── task ────────────────────────────────────────────────────────────────

  private task(): Plan['task'] {
    const pos = this.advance().pos;
    const nameTok = this.expectWord('a task name ("main")');
    if (nameTok.raw !== 'main') {
      this.fail(nameTok.pos, `unknown task "${nameTok.raw}": expected "main"`, 'Only `task main` is supported: it holds the commands every job runs.');
    }
    this.endOfStatement();
    const commands: CommandNode[] = [];
    for (;;) {
      this.skipBlankStatements();
      if (this.tok.kind === 'eof') this.fail(this.tok.pos, `missing "endtask" for task main opened at ${pos.line}:${pos.col}`, 'Close the task with `endtask` on its own line.');
      if (this.isKw('endtask')) {
        this.advance();
        this.endOfStatement();
        return { name: 'main', pos, commands };
      }
      commands.push(this.command());
    }
  }

  private command(): CommandNode {
    if (this.isKw('node:execute')) return this.nodeExecute();
    const kw = this.expectWord('a command');
    const pos = kw.pos;
    switch (kw.raw) {
      case 'copy': {
        const from = this.pathRef('a source path');
        const to = this.pathRef('a destination path');
        this.endOfStatement();
        // An unqualified end is the other side of the copy: the thesis plan's
        // `copy node:output.img output_${index}.img` stages results back to root.
        const fromLoc = from.loc ?? (to.loc === 'root' ? 'node' : 'root');
        const toLoc = to.loc ?? (from.loc === 'node' ? 'root' : 'node');
        return { kind: 'copy', from: { loc: fromLoc, path: from.path }, to: { loc: toLoc, path: to.path }, pos };
      }
      case 'exec': {
        const argv = [this.template('a program')];
        while (!this.atEnd()) argv.push(this.template('an argument'));
        return { kind: 'exec', argv, pos };
      }
      case 'shexec': {
        const cmd = this.template('a quoted shell command');
        if (!this.atEnd()) this.fail(this.tok.pos, `shexec takes one quoted command, found ${this.found()}`, 'Quote the whole command: shexec "prog arg > out".');
        return { kind: 'shexec', cmd, pos };
      }
      case 'onerror': {
        const mode = this.tok.kind === 'word' ? this.tok.raw : '';
        if (mode !== 'fail' && mode !== 'ignore') this.fail(this.where(), `expected "fail" or "ignore", found ${this.found()}`);
        this.advance();
        this.endOfStatement();
        return { kind: 'onerror', mode, pos };
      }
      case 'redirect':
        return this.redirect(pos);
      default: {
        const missingEnd = TOP_LEVEL.includes(kw.raw) ? ' (is "endtask" missing above?)' : didYouMean(kw.raw, COMMANDS);
        this.fail(pos, `unknown command "${kw.raw}": expected ${listOf(COMMANDS)}${missingEnd}`);
      }
    }
  }

  /** Classic dialect: the rest of the line is one shell command (a `shexec` without the quotes). */
  private nodeExecute(): CommandNode {
    const kw = this.tok;
    this.classic = true;
    const raw = this.lexer.restOfLine();
    this.prevEnd = raw.end;
    this.tok = this.lexer.next();
    if (raw.parts.length === 0) this.fail(kw.end, 'expected a shell command after node:execute');
    return { kind: 'shexec', cmd: { parts: raw.parts, pos: raw.pos }, pos: kw.pos };
  }

  private redirect(pos: Pos): CommandNode {
    const stream = this.tok.kind === 'word' ? this.tok.raw : '';
    if (stream !== 'stdout' && stream !== 'stderr') this.fail(this.where(), `expected "stdout" or "stderr", found ${this.found()}`);
    this.advance();
    let file: Template | null = null;
    let append = false;
    if (this.isKw('off')) {
      this.advance();
    } else {
      if (this.isKw('append')) {
        this.advance();
        append = true;
      }
      if (!this.isKw('to')) this.fail(this.where(), `expected ${append ? '"to"' : '"to", "append" or "off"'}, found ${this.found()}`);
      this.advance();
      file = this.template('a file name');
    }
    this.endOfStatement();
    return { kind: 'redirect', stream, append, file, pos };
  }

  private template(what: string): Template {
    const t = this.expectWord(what);
    return { parts: t.parts, pos: t.pos };
  }

  /** The `root:`/`node:` prefix is syntax, so it is taken from the source text, never from a substituted value. */
  private pathRef(what: string): { loc: Location | null; path: Template } {
    const t = this.template(what);
    const first = t.parts[0];
    for (const loc of ['root', 'node'] as const) {
      const prefix = `${loc}:`;
      if (first?.kind === 'lit' && first.text.startsWith(prefix)) {
        const rest = first.text.slice(prefix.length);
        const parts = rest === '' ? t.parts.slice(1) : [{ kind: 'lit' as const, text: rest }, ...t.parts.slice(1)];
        if (parts.length === 0) this.fail(t.pos, `expected a path after "${prefix}"`);
        return { loc, path: { parts, pos: t.pos } };
      }
    }
    return { loc: null, path: t };
  }

  private checkVariables(plan: Plan): void {
    const known = new Set<string>([...IMPLICIT_VARIABLES, ...plan.parameters.map((p) => p.name)]);
    const names = plan.parameters.map((p) => p.name).join(', ') || 'none';
    for (const t of commandTemplates(plan.task.commands)) {
      for (const p of t.parts) {
        if (p.kind === 'var' && !known.has(p.name)) {
          this.fail(
            p.pos,
            `undefined variable "${p.name}": only parameters (${names}) and ${IMPLICIT_VARIABLES.join('/')} can be substituted; environment variables are not`,
            `Declare \`parameter ${p.name} …\`, or write $$${p.name} to pass a literal $${p.name} through to the shell.`,
          );
        }
      }
    }
  }
}

export function commandTemplates(commands: CommandNode[]): Template[] {
  return commands.flatMap((c): Template[] => {
    switch (c.kind) {
      case 'copy':
        return [c.from.path, c.to.path];
      case 'exec':
        return c.argv;
      case 'shexec':
        return [c.cmd];
      case 'redirect':
        return c.file ? [c.file] : [];
      case 'onerror':
        return [];
    }
  });
}

type Fail = (pos: Pos, message: string) => never;

/** Static checks so every bad range is reported at parse time with its position, not mid-sweep. */
function checkDomain(type: ParamType, d: Domain, fail: Fail): void {
  const isInt = type === 'integer';
  const checkValue = (v: ValueLit): void => {
    if (isInt && !INTEGER.test(v.text)) fail(v.pos, `expected an integer, found "${v.text}"`);
    if (type === 'float' && !NUMBER.test(v.text)) fail(v.pos, `expected a number, found "${v.text}"`);
  };
  const checkInt = (n: NumberLit, what: string): void => {
    if (isInt && !INTEGER.test(n.text)) fail(n.pos, `integer ${what} must be a whole number, found ${n.text}`);
    // Beyond 2^53 a double cannot hold every integer: the job would get a different number than the plan says.
    if (isInt && !Number.isSafeInteger(n.value)) fail(n.pos, `integer ${what} ${n.text} is too large to be exact (at most ${Number.MAX_SAFE_INTEGER} in size)`);
  };
  const numeric = d.kind === 'range' || d.kind === 'points' || d.kind === 'random';
  if (numeric && (type === 'text' || type === 'files')) fail(d.pos, `"${d.kind === 'random' ? 'random' : 'range'}" needs a float or integer parameter, not ${type}`);
  if (type === 'files' && d.kind !== 'anyof') fail(d.pos, 'files parameters take `select anyof PATTERN…` (glob patterns matched in the experiment root)');
  // The glob matcher throws a TypeError for an empty pattern, mid-sweep and without a position.
  if (type === 'files' && d.kind === 'anyof') for (const v of d.values) if (v.text === '') fail(v.pos, 'empty file pattern');
  switch (d.kind) {
    case 'default':
      return checkValue(d.value);
    case 'anyof':
      return d.values.forEach(checkValue);
    case 'oneof':
      d.values.forEach(checkValue);
      if (d.default && !d.values.some((v) => v.text === d.default?.text)) fail(d.default.pos, `default "${d.default.text}" is not one of the listed values`);
      return;
    case 'range':
      checkInt(d.from, 'bound');
      checkInt(d.to, 'bound');
      checkInt(d.step, 'step');
      if (d.step.value === 0) fail(d.step.pos, 'step must not be 0');
      if ((d.to.value - d.from.value) * d.step.value < 0) {
        fail(d.step.pos, `step ${d.step.text} goes the wrong way: range from ${d.from.text} to ${d.to.text} needs a ${d.step.value > 0 ? 'negative' : 'positive'} step`);
      }
      return;
    case 'points':
      checkInt(d.from, 'bound');
      checkInt(d.to, 'bound');
      checkPoints(d.points, fail);
      if (isInt && d.points.value > 1 && (d.to.value - d.from.value) % (d.points.value - 1) !== 0) {
        fail(d.points.pos, `${d.points.text} points from ${d.from.text} to ${d.to.text} are not whole numbers`);
      }
      // Each point is (from*(n-1-i) + to*i)/(n-1): those products must stay finite.
      if (!Number.isFinite((Math.abs(d.from.value) + Math.abs(d.to.value)) * Math.max(1, d.points.value - 1))) {
        fail(d.points.pos, `${d.points.text} points from ${d.from.text} to ${d.to.text} cannot be computed: the numbers are too large`);
      }
      return;
    case 'random':
      checkInt(d.from, 'bound');
      checkInt(d.to, 'bound');
      if (d.from.value > d.to.value) fail(d.to.pos, `random range is empty: ${d.to.text} is below ${d.from.text}`);
      // A draw is from + u*(to-from) (+1 for integers): the width must be a finite, exact number.
      if (!Number.isFinite(d.to.value - d.from.value) || (isInt && !Number.isSafeInteger(d.to.value - d.from.value + 1))) {
        fail(d.to.pos, `random range from ${d.from.text} to ${d.to.text} is too wide to draw from`);
      }
      if (d.points) checkPoints(d.points, fail);
      return;
  }
}

function checkPoints(n: NumberLit, fail: Fail): void {
  if (!INTEGER.test(n.text) || n.value < 1) fail(n.pos, `points must be a whole number of at least 1, found ${n.text}`);
}

function listOf(words: readonly string[]): string {
  const q = words.map((w) => `"${w}"`);
  return q.length < 2 ? q.join('') : `${q.slice(0, -1).join(', ')} or ${q[q.length - 1]}`;
}

function didYouMean(word: string, candidates: readonly string[]): string {
  const limit = word.length >= 4 ? 2 : 1;
  const best = candidates.map((c) => ({ c, d: editDistance(word, c) })).sort((a, b) => a.d - b.d)[0];
  return best && best.d > 0 && best.d <= limit ? ` (did you mean "${best.c}"?)` : '';
}

/** Optimal string alignment: a swapped pair (endtsak) counts as one edit. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
