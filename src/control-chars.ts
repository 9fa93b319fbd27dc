/**
 * Control characters in values that end up in text files: job scripts, batch
 * scripts, submit descriptions, comments. A newline there ends a line, and the
 * next line is read as a command or a directive (issue 11, defect 1), so values
 * are refused where they enter vmwu and escaped where they are written.
 *
 * Refused: every C0 control (newline, carriage return, tab, escape, NUL …), DEL,
 * the C1 controls (NEL, U+0085, is a line break to some tools and CSI, U+009B,
 * starts a terminal escape) and the Unicode line and paragraph separators, which
 * editors and some parsers treat as line breaks. A tab is refused too: parameter
 * values are one line of text, and a tab is invisible in every listing.
 */
import { VmwuError } from './errors.js';

// Matching control characters is the point here.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;
// eslint-disable-next-line no-control-regex
const CONTROL_ALL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/gu;

const NAMES: Record<string, string> = {
  '\n': 'a newline (\\n)', '\r': 'a carriage return (\\r)', '\t': 'a tab (\\t)', '\0': 'a NUL byte (\\0)',
  '\x1b': 'an escape character (\\x1b)', '\u2028': 'a line separator (U+2028)', '\u2029': 'a paragraph separator (U+2029)',
};

/** Index of the first control character in s, or -1. */
export function controlCharIndex(s: string): number {
  const m = CONTROL.exec(s);
  return m ? m.index : -1;
}

export function hasControlChars(s: string): boolean {
  return CONTROL.test(s);
}

/** "a newline (\n)", "the control character U+0007", for messages. */
export function describeControlChar(c: string): string {
  return NAMES[c] ?? `the control character U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Each control character as an escape (\n, \t, \u0007 …); everything else as it is. */
export function escapeControlChars(s: string): string {
  return s.replace(CONTROL_ALL, (c) => {
    switch (c) {
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default:
        return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
    }
  });
}

/**
 * A value for a line of text meant for people (a comment, a table cell): bare when
 * it is plain, else double-quoted with `"`, `\` and control characters escaped, so
 * it can neither end the line nor be mistaken for two values.
 */
export function displayValue(s: string): string {
  if (s !== '' && !/[\s"\\]/u.test(s) && !hasControlChars(s)) return s;
  return `"${escapeControlChars(s.replace(/[\\"]/g, (c) => `\\${c}`))}"`;
}

/**
 * Refuses a value with a control character. `where` names the place (a file:line:col,
 * `--param n`, a field) and is the start of the message.
 */
export function checkNoControlChars(value: string, where: string, code = 'BAD_PARAM', hint = 'values must be one line of printable text: no newlines, tabs or other control characters'): void {
  const i = controlCharIndex(value);
  if (i < 0) return;
  throw new VmwuError(code, `${where}: ${displayValue(value)} contains ${describeControlChar(value[i]!)} at character ${i + 1}`, hint);
}
