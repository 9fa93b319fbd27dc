/**
 * Bytes a guest or a remote host wrote, on their way to the user's terminal. A
 * terminal acts on some of them: ESC starts sequences that clear the screen, move
 * the cursor over what was printed, retitle the window or, with OSC 52, write the
 * clipboard; an 8-bit CSI (U+009B) does the same in some terminals. So vmwu prints
 * such text escaped, pipes included (a pipe often ends in a terminal: `| less -R`,
 * `| tee`); `--raw` gives the exact bytes, and stored logs are never changed.
 *
 * Kept as they are: printable text, every valid UTF-8 character, newline, tab, and
 * a carriage return right before a newline (CRLF line ends: the guest console, DOS
 * files), which can hide nothing since the line ends there. Escaped, in the forms
 * src/control-chars.ts uses elsewhere in vmwu:
 *   - a lone carriage return as `\r`: it would let the next text overwrite the line,
 *     so a guest could print one thing and show another; progress bars that redraw
 *     with it come out as one line with `\r` between their states (see --raw);
 *   - every other C0 control, DEL, the C1 controls and U+2028/U+2029 as `\uXXXX`
 *     (ESC as `\u001b`);
 *   - a byte that is not part of valid UTF-8 as `\xNN` (so `\x9b` is a raw byte,
 *     `\u009b` the character).
 * A backslash in the text is not doubled, so ordinary output stays byte for byte.
 */

const EMPTY = Buffer.alloc(0);
const CR = 0x0d;
const LF = 0x0a;
const TAB = 0x09;

const hex = (n: number, digits: number) => n.toString(16).padStart(digits, '0');

/** Length of the valid UTF-8 sequence at b[i] (i holds a byte ≥ 0x80): 0 when invalid, -1 when b ends before it does. */
function sequenceAt(b: Buffer, i: number): number {
  const lead = b[i]!;
  let need: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) need = 1;
  else if (lead >= 0xe0 && lead <= 0xef) {
    need = 2;
    // No overlong forms, no UTF-16 surrogates.
    if (lead === 0xe0) lo = 0xa0;
    if (lead === 0xed) hi = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    need = 3;
    // No overlong forms, nothing beyond U+10FFFF.
    if (lead === 0xf0) lo = 0x90;
    if (lead === 0xf4) hi = 0x8f;
  } else return 0;
  for (let k = 1; k <= need; k++) {
    if (i + k >= b.length) return -1;
    const c = b[i + k]!;
    if (c < lo || c > hi) return 0;
    lo = 0x80;
    hi = 0xbf;
  }
  return need + 1;
}

function codePoint(b: Buffer, i: number, n: number): number {
  if (n === 2) return ((b[i]! & 0x1f) << 6) | (b[i + 1]! & 0x3f);
  if (n === 3) return ((b[i]! & 0x0f) << 12) | ((b[i + 1]! & 0x3f) << 6) | (b[i + 2]! & 0x3f);
  return ((b[i]! & 0x07) << 18) | ((b[i + 1]! & 0x3f) << 12) | ((b[i + 2]! & 0x3f) << 6) | (b[i + 3]! & 0x3f);
}

/**
 * One output stream of text, escaped as it comes, chunk by chunk: a character split
 * between two chunks, or a CR whose next byte has not come yet, is held until it has.
 * One instance per stream (stdout and stderr each), since each may be cut anywhere.
 */
export class TerminalText {
  private held: Buffer = EMPTY;

  /** The escaped form of what can be decided of `chunk` now. */
  push(chunk: Buffer): Buffer {
    const b = this.held.length ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = EMPTY;
    return this.escape(b, false);
  }

  /** The escaped form of what was held: the stream ended, so an unfinished character is invalid. */
  end(): Buffer {
    const b = this.held;
    this.held = EMPTY;
    return b.length ? this.escape(b, true) : EMPTY;
  }

  private escape(b: Buffer, final: boolean): Buffer {
    const out: Buffer[] = [];
    let kept = 0;
    const replace = (at: number, len: number, text: string) => {
      if (at > kept) out.push(b.subarray(kept, at));
      out.push(Buffer.from(text, 'latin1'));
      kept = at + len;
    };
    let i = 0;
    while (i < b.length) {
      const c = b[i]!;
      if ((c >= 0x20 && c < 0x7f) || c === LF || c === TAB) {
        i++;
      } else if (c === CR) {
        if (i + 1 === b.length && !final) break;
        if (b[i + 1] === LF) i += 2;
        else replace(i++, 1, '\\r');
      } else if (c < 0x80) {
        replace(i++, 1, `\\u${hex(c, 4)}`);
      } else {
        const n = sequenceAt(b, i);
        if (n < 0 && !final) break;
        if (n <= 0) {
          replace(i++, 1, `\\x${hex(c, 2)}`);
          continue;
        }
        const cp = codePoint(b, i, n);
        if (cp <= 0x9f || cp === 0x2028 || cp === 0x2029) replace(i, n, `\\u${hex(cp, 4)}`);
        i += n;
      }
    }
    // Copied: the caller may reuse its buffer.
    if (i < b.length) this.held = Buffer.from(b.subarray(i));
    if (!out.length) return b.subarray(0, i);
    if (i > kept) out.push(b.subarray(kept, i));
    return Buffer.concat(out);
  }
}

/** A message for the terminal, with text from a guest or a host in it: its lines and tabs kept, the rest escaped as above. */
export function escapeForTerminal(s: string): string {
  const t = new TerminalText();
  return Buffer.concat([t.push(Buffer.from(s, 'utf8')), t.end()]).toString('utf8');
}

/** Where a job's live output goes: this process's stdout and stderr, escaped unless `raw`. */
export function guestOutput(raw: boolean): { write(stream: 'stdout' | 'stderr', chunk: Buffer): void; end(): void } {
  const streams = { stdout: process.stdout, stderr: process.stderr };
  const text = { stdout: new TerminalText(), stderr: new TerminalText() };
  return {
    write(stream, chunk) {
      const b = raw ? chunk : text[stream].push(chunk);
      if (b.length) streams[stream].write(b);
    },
    end() {
      if (raw) return;
      for (const s of ['stdout', 'stderr'] as const) {
        const b = text[s].end();
        if (b.length) streams[s].write(b);
      }
    },
  };
}
