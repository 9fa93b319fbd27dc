/**
 * Every failure a user can act on is a VmwuError: a message saying what went wrong
 * (naming the file, line and field where there is one) and a hint saying what to do.
 * The CLI prints both and exits 125; library callers can switch on `code`.
 */
export class VmwuError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  constructor(code: string, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VmwuError';
    this.code = code;
    this.hint = hint;
  }
}

export function isVmwuError(e: unknown): e is VmwuError {
  return e instanceof VmwuError;
}
