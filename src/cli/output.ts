import { isVmwuError } from '../errors.js';
import { storeBusy } from '../store/busy.js';

/** Exit code for a vmwu (not a job) failure, as `timeout`/`env` use 124/125 conventions. */
export const EXIT_VMWU_ERROR = 125;
export const EXIT_TIMEOUT = 124;

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function reportError(e: unknown, json = false): number {
  // A lock held past the busy timeout by another process, wherever it struck: a typed error with a hint.
  e = storeBusy(e, 'writing to the store') ?? e;
  if (json) {
    const err = isVmwuError(e) ? { code: e.code, message: e.message, hint: e.hint } : { code: 'INTERNAL', message: String((e as Error)?.message ?? e) };
    printJson({ status: 'error', error: err });
  }
  if (isVmwuError(e)) {
    process.stderr.write(`vmwu: ${e.message}\n`);
    if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
  } else {
    process.stderr.write(`vmwu: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  }
  return EXIT_VMWU_ERROR;
}

export function ms(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}s` : n >= 1000 ? `${(n / 1000).toFixed(2)}s` : `${Math.round(n)}ms`;
}

export function table(rows: string[][]): string {
  if (!rows.length) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}
