import { escapeControlChars } from '../control-chars.js';
import { isVmwuError } from '../errors.js';
import { storeBusy } from '../store/busy.js';
import { escapeForTerminal } from './terminal-text.js';

/** What the commands print for people and for scripts: JSON safe on a terminal, tables, durations, errors with their hints, and vmwu's own exit codes. */

/** Exit code for a vmwu (not a job) failure, as `timeout`/`env` use 124/125 conventions. */
export const EXIT_VMWU_ERROR = 125;
export const EXIT_TIMEOUT = 124;

/**
 * JSON for scripts, which people read on terminals too: JSON.stringify escapes C0
 * controls but leaves DEL, the C1 controls (U+009B starts a terminal escape) and
 * U+2028/9 raw inside strings; as \u escapes the value parsed is the same.
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/[\u007f-\u009f\u2028\u2029]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function printJson(value: unknown): void {
  process.stdout.write(jsonText(value) + '\n');
}

export function reportError(e: unknown, json = false): number {
  // A lock held past the busy timeout by another process, wherever it struck: a typed error with a hint.
  e = storeBusy(e, 'writing to the store') ?? e;
  if (json) {
    const err = isVmwuError(e) ? { code: e.code, message: e.message, hint: e.hint } : { code: 'INTERNAL', message: String((e as Error)?.message ?? e) };
    printJson({ status: 'error', error: err });
  }
  // A message may quote what a guest or a host wrote (its error output, a name it reported).
  if (isVmwuError(e)) {
    process.stderr.write(`vmwu: ${escapeForTerminal(e.message)}\n`);
    if (e.hint) process.stderr.write(`  hint: ${escapeForTerminal(e.hint)}\n`);
  } else {
    process.stderr.write(`vmwu: internal error: ${escapeForTerminal((e as Error)?.stack ?? String(e))}\n`);
  }
  return EXIT_VMWU_ERROR;
}

export function ms(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}s` : n >= 1000 ? `${(n / 1000).toFixed(2)}s` : `${Math.round(n)}ms`;
}

/**
 * Columns of text for people. Cells come from records a guest, a host or a plan
 * filled, so each is escaped: none can end its line or move the cursor, and the
 * widths are those of what is printed.
 */
export function table(rows: string[][]): string {
  if (!rows.length) return '';
  const cells = rows.map((r) => r.map((c) => escapeControlChars(c)));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
