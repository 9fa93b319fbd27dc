import { CtlEvent, type CtlEventName } from '../../guest/protocol.js';

/** The agent's control port as the host reads it: bounded lines, parsed messages, failures kept. */

export interface CtlMessage {
  event: CtlEventName;
  args: string[];
  guestUptime: number | undefined;
}

const MAX_LINE = 4096;

/**
 * Parses one control-port line (`vmwu <event> [args…] <uptime>`). The guest is
 * untrusted: anything malformed is ignored rather than believed.
 */
export function parseCtlLine(line: string): CtlMessage | undefined {
  if (line.length > MAX_LINE) return undefined;
  const words = line.trim().split(/\s+/);
  if (words[0] !== 'vmwu' || words.length < 2) return undefined;
  const event = words[1] as CtlEventName;
  if (!CtlEvent.includes(event)) return undefined;
  const rest = words.slice(2);
  const last = rest.length ? Number(rest[rest.length - 1]) : NaN;
  const guestUptime = Number.isFinite(last) ? last : undefined;
  return { event, args: guestUptime === undefined ? rest : rest.slice(0, -1), guestUptime };
}

/** Splits a byte stream into lines, dropping any line longer than the cap. */
export class LineSplitter {
  private buf = '';
  // After an over-long line, everything up to the next newline belongs to it.
  private skipping = false;
  constructor(private readonly onLine: (line: string) => void) {}
  push(chunk: string): void {
    this.buf += chunk;
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 1);
      if (!this.skipping && line.length <= MAX_LINE) this.onLine(line);
      this.skipping = false;
    }
    if (this.buf.length > MAX_LINE) {
      this.buf = '';
      this.skipping = true;
    }
  }
}

/**
 * The host end of the control port. The agent sends a few hundred bytes per boot;
 * the job cannot reach the port through fd 3 (the agent closes it), but a guest
 * is untrusted and root in there, so what is read and kept is bounded: bytes past
 * `CTL_BYTES_CAP` are drained unread and only the first `KEPT_FAILURES` reasons
 * of `vmwu fail` are kept.
 */
export const CTL_BYTES_CAP = 64 * 1024;
export const KEPT_FAILURES = 4;

export class ControlPort {
  readonly failures: string[] = [];
  private bytes = 0;
  private readonly lines: LineSplitter;
  constructor(onMessage: (msg: CtlMessage) => void) {
    this.lines = new LineSplitter((line) => {
      const msg = parseCtlLine(line);
      if (!msg) return;
      if (msg.event === 'fail' && this.failures.length < KEPT_FAILURES) this.failures.push(msg.args.join(' '));
      onMessage(msg);
    });
  }
  push(chunk: string): void {
    if (this.bytes >= CTL_BYTES_CAP) return;
    const part = chunk.slice(0, CTL_BYTES_CAP - this.bytes);
    this.bytes += part.length;
    this.lines.push(part);
  }
}
