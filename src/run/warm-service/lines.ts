import { connect, type Socket } from 'node:net';

/**
 * Newline-delimited messages on a socket, each handed over whole as it
 * completes. A peer that sends a line longer than `max` is cut off.
 */
export function onLines(from: Socket, max: number, each: (line: string) => void): void {
  let buf = '';
  from.setEncoding('utf8');
  from.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line) each(line);
    }
    if (buf.length > max) from.destroy(new Error(`a message longer than ${max} bytes`));
  });
}

export function sendLine(to: Socket, msg: unknown): void {
  if (!to.destroyed) to.write(`${JSON.stringify(msg)}\n`);
}

/** A connection to the unix socket at `path`, or undefined when no live process answers there (none, or one that died). */
export function connectIfAnswered(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => resolve(c));
    c.once('error', () => resolve(undefined));
  });
}
