import { VmwuError } from '../../errors.js';
import { escapeControlChars } from '../../control-chars.js';

/** The words of a plan file, in both dialects (Nimrod/G and classic): quoting, escapes and `${name}` references, each error placed at its line and column. */

/** 1-based; `col` counts UTF-16 code units, a tab counts as one column. */
export interface Pos {
  line: number;
  col: number;
}

/** A word is kept as literal text and variable references so substitution never re-parses values. */
export type Part = { kind: 'lit'; text: string } | { kind: 'var'; name: string; pos: Pos };

export type Token =
  | { kind: 'word'; raw: string; parts: Part[]; pos: Pos; end: Pos }
  | { kind: 'semi' | 'eol' | 'eof'; pos: Pos; end: Pos };

export interface RawLine {
  parts: Part[];
  pos: Pos;
  end: Pos;
}

const SYNTAX_HINT = 'See the plan-file format: `parameter NAME TYPE DOMAIN` lines, then `task main` … `endtask`.';

/** Messages quote the plan's own words, which may hold a terminal escape sequence: control characters are shown escaped. */
export function planError(fileName: string, pos: Pos, message: string, hint = SYNTAX_HINT, code = 'PLAN_SYNTAX'): VmwuError {
  return new VmwuError(code, `${fileName}:${pos.line}:${pos.col}: ${escapeControlChars(message)}`, hint);
}

const C_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', f: '\f', v: '\v', '\\': '\\', '"': '"', "'": "'", '?': '?', $: '$' };
const BLANK = new Set([' ', '\t', '\r', '\f', '\v']);
const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

/**
 * Pull-based so the parser can switch to raw mode for `node:execute`, whose argument is the
 * rest of the line handed verbatim to a shell (only `$` substitution applies there).
 */
export class Lexer {
  private i = 0;
  private line = 1;
  private col = 1;
  // `#` only starts a comment as the first thing on a line: elsewhere it is ordinary text.
  private atLineStart = true;

  constructor(
    private readonly src: string,
    private readonly fileName: string,
  ) {
    if (src.charCodeAt(0) === 0xfeff) this.i = 1;
    // No shell, script or file name can hold a NUL byte: refused wherever it is written.
    const nul = src.indexOf('\0');
    if (nul >= 0) {
      const before = src.slice(0, nul).split('\n');
      this.fail({ line: before.length, col: before[before.length - 1]!.length + 1 }, 'the plan contains a NUL byte', 'A plan file is text: remove the NUL byte (is this a binary file?).');
    }
  }

  private here(): Pos {
    return { line: this.line, col: this.col };
  }

  private peek(k = 0): string {
    return this.src[this.i + k] ?? '';
  }

  private adv(): string {
    const c = this.src[this.i++] ?? '';
    if (c === '\n') {
      this.line++;
      this.col = 1;
      this.atLineStart = true;
    } else {
      this.col++;
    }
    return c;
  }

  private continuationAhead(): boolean {
    return this.peek() === '\\' && (this.peek(1) === '\n' || (this.peek(1) === '\r' && this.peek(2) === '\n'));
  }

  private skipContinuation(): void {
    this.adv();
    if (this.peek() === '\r') this.adv();
    this.adv();
    this.atLineStart = false;
  }

  private fail(pos: Pos, message: string, hint?: string): never {
    throw planError(this.fileName, pos, message, hint);
  }

  next(): Token {
    for (;;) {
      const c = this.peek();
      const pos = this.here();
      if (c === '') return { kind: 'eof', pos, end: pos };
      if (BLANK.has(c)) {
        this.adv();
      } else if (this.continuationAhead()) {
        this.skipContinuation();
      } else if (c === '\n') {
        this.adv();
        return { kind: 'eol', pos, end: pos };
      } else if ((c === '#' && this.atLineStart) || (c === '/' && this.peek(1) === '/')) {
        while (this.peek() !== '' && this.peek() !== '\n') this.adv();
      } else if (c === '/' && this.peek(1) === '*') {
        const nl = this.blockComment(pos);
        // A comment spanning lines still ends the statement, as the newline it hides would.
        if (nl) return { kind: 'eol', pos: nl, end: nl };
      } else if (c === ';') {
        this.adv();
        return { kind: 'semi', pos, end: this.here() };
      } else {
        return this.word();
      }
    }
  }

  private blockComment(start: Pos): Pos | null {
    this.adv();
    this.adv();
    let nl: Pos | null = null;
    while (!(this.peek() === '*' && this.peek(1) === '/')) {
      if (this.peek() === '') this.fail(start, 'unterminated /* comment: missing */');
      if (this.peek() === '\n' && !nl) nl = this.here();
      this.adv();
    }
    this.adv();
    this.adv();
    this.atLineStart = false;
    return nl;
  }

  /** Shell-like word: quotes group text and are removed, `\` escapes one character outside single quotes. */
  private word(): Token {
    const pos = this.here();
    const startIndex = this.i;
    const out = new PartsBuilder();
    this.atLineStart = false;
    for (;;) {
      const c = this.peek();
      if (c === '' || c === '\n' || c === ';' || BLANK.has(c) || this.continuationAhead()) break;
      if (c === '\\') {
        this.adv();
        if (this.peek() === '') out.lit('\\');
        else out.lit(this.adv());
      } else if (c === '"' || c === "'") {
        this.quoted(c, out);
      } else if (c === '$') {
        this.dollar(out);
      } else {
        out.lit(this.adv());
      }
    }
    return { kind: 'word', raw: this.src.slice(startIndex, this.i), parts: out.done(), pos, end: this.here() };
  }

  private quoted(q: string, out: PartsBuilder): void {
    const start = this.here();
    this.adv();
    out.lit('');
    for (;;) {
      const c = this.peek();
      if (c === '' || c === '\n') this.fail(start, `unterminated string: missing closing ${q}`, 'Close the quote on the same line, or end the line with `\\` to continue it.');
      if (c === q) {
        this.adv();
        return;
      }
      if (q === '"' && c === '\\') {
        this.escape(out);
      } else if (c === '$') {
        this.dollar(out);
      } else {
        out.lit(this.adv());
      }
    }
  }

  /**
   * Nimrod/G strings are C strings: C escapes and a backslash-newline splice. An unknown escape
   * is kept as written, so a regex such as \d reaches the shell intact.
   */
  private escape(out: PartsBuilder): void {
    if (this.continuationAhead()) {
      this.skipContinuation();
      return;
    }
    const pos = this.here();
    this.adv();
    const c = this.peek();
    if (Object.hasOwn(C_ESCAPES, c)) {
      this.adv();
      out.lit(C_ESCAPES[c]);
      return;
    }
    const digits = c === 'x' ? /[0-9a-fA-F]/ : /[0-7]/;
    let code = '';
    if (c === 'x') this.adv();
    while (digits.test(this.peek()) && (c === 'x' || code.length < 3)) code += this.adv();
    if (code !== '' && parseInt(code, c === 'x' ? 16 : 8) === 0) this.fail(pos, `"\\${c === 'x' ? 'x' : ''}${code}" would put a NUL byte into the text, which no command or file name can hold`, 'Remove the escape.');
    if (code !== '') out.lit(String.fromCharCode(parseInt(code, c === 'x' ? 16 : 8)));
    else out.lit(c === 'x' ? '\\x' : '\\');
  }

  /** `$` is special everywhere (Nimrod substitutes inside quotes too); `$$` is the one escape. */
  private dollar(out: PartsBuilder): void {
    const pos = this.here();
    this.adv();
    const c = this.peek();
    if (c === '$') {
      this.adv();
      out.lit('$');
      return;
    }
    const braced = c === '{';
    if (braced) this.adv();
    let name = '';
    if (NAME_START.test(this.peek())) {
      while (NAME_CHAR.test(this.peek())) name += this.adv();
    }
    if (braced && (name === '' || this.peek() !== '}')) {
      this.fail(pos, 'bad variable reference: expected ${name} with a name of letters, digits and _', 'Write $$ for a literal $.');
    }
    if (name === '') this.fail(pos, '"$" must start a variable ($name or ${name})', 'Write $$ for a literal $.');
    if (braced) this.adv();
    out.variable(name, pos);
  }

  /** Rest of the logical line verbatim, for shell commands: quotes and `;` inside belong to the shell. */
  restOfLine(): RawLine {
    while (BLANK.has(this.peek())) this.adv();
    const pos = this.here();
    const out = new PartsBuilder();
    for (;;) {
      const c = this.peek();
      if (c === '' || c === '\n') break;
      if (this.continuationAhead()) {
        this.skipContinuation();
      } else if (c === '\\' && this.peek(1) === '$') {
        // Left as `\$` for the shell, which reads it as a literal `$`.
        out.lit(this.adv());
        out.lit(this.adv());
      } else if (c === '$') {
        this.dollar(out);
      } else {
        out.lit(this.adv());
      }
    }
    const end = this.here();
    return { parts: trimTerminator(out.done()), pos, end };
  }
}

class PartsBuilder {
  private parts: Part[] = [];
  private text = '';
  private pending = false;

  lit(s: string): void {
    this.text += s;
    this.pending = true;
  }

  variable(name: string, pos: Pos): void {
    this.flush();
    this.parts.push({ kind: 'var', name, pos });
  }

  private flush(): void {
    if (this.text !== '') this.parts.push({ kind: 'lit', text: this.text });
    this.text = '';
  }

  /** An empty quoted string is still a word (an empty argument), so it keeps one empty part. */
  done(): Part[] {
    this.flush();
    if (this.parts.length === 0 && this.pending) this.parts.push({ kind: 'lit', text: '' });
    return this.parts;
  }
}

/** Classic plans end `node:execute` lines with `;`: that one is the statement terminator, not shell. */
function trimTerminator(parts: Part[]): Part[] {
  const last = parts[parts.length - 1];
  if (last?.kind !== 'lit') return parts;
  const text = last.text.replace(/\s+$/, '').replace(/;$/, '').replace(/\s+$/, '');
  const rest = parts.slice(0, -1);
  return text === '' ? rest : [...rest, { kind: 'lit', text }];
}
