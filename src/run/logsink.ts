import { createWriteStream, existsSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Writable } from 'node:stream';

/** A guest's streams kept in host log files, live and capped, so that an untrusted guest can never fill the host's disk. */

/** What vmwu keeps of a job's stdout and of its stderr; the console log has its own. */
export const LOG_CAP = 64 * 1024 * 1024;
export const CONSOLE_CAP = 4 * 1024 * 1024;

const truncationNote = (cap: number) => `\n[vmwu: output truncated at ${cap} bytes]\n`;

export interface LogSinkResult {
  bytes: number;
  truncated: boolean;
}

/**
 * Copies a guest stream into a host log file, live (so `vmwu logs -f` sees it), up
 * to a cap: the guest is untrusted and must not be able to fill the host's disk.
 * Past the cap the stream is still drained so the guest never blocks on it.
 * `onData` sees exactly what the file gets, so a live copy (a terminal, an SSH
 * channel) is capped too. `count` holds the bytes taken so far, live (a
 * checkpoint records it); one that starts above 0 continues a log that already
 * holds that many.
 */
export function sinkToFile(socket: Socket, path: string, cap: number, onData?: (chunk: Buffer) => void, count: { bytes: number } = { bytes: 0 }): Promise<LogSinkResult> {
  const file = createWriteStream(path, { flags: 'a' });
  let bytes = count.bytes;
  let truncated = false;
  socket.on('data', (chunk: Buffer) => {
    if (bytes >= cap) {
      truncated = true;
      return;
    }
    const part = bytes + chunk.length > cap ? chunk.subarray(0, cap - bytes) : chunk;
    if (part.length < chunk.length) truncated = true;
    bytes += part.length;
    count.bytes = bytes;
    file.write(part);
    onData?.(part);
  });
  return new Promise((resolve) => {
    const done = () => {
      if (truncated) file.write(truncationNote(cap));
      file.end(() => resolve({ bytes, truncated }));
    };
    socket.once('close', done);
    socket.on('error', () => undefined);
  });
}

/**
 * A file writer that keeps the first `cap` bytes and drops the rest (with a note),
 * for copies of a job's output that arrive from elsewhere (an SSH host): the
 * sender is not trusted to have capped them. With `append` it goes on after
 * what the file holds, which counts against the cap.
 */
export function cappedFileWriter(path: string, cap: number, o: { append?: boolean } = {}): Writable {
  const file = createWriteStream(path, { flags: o.append ? 'a' : 'w' });
  let bytes = o.append && existsSync(path) ? statSync(path).size : 0;
  let truncated = false;
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      const part = bytes + chunk.length > cap ? chunk.subarray(0, Math.max(0, cap - bytes)) : chunk;
      if (part.length < chunk.length) truncated = true;
      bytes += part.length;
      if (!part.length) return cb();
      file.write(part, (e) => cb(e ?? null));
    },
    final(cb) {
      if (truncated) file.write(truncationNote(cap));
      file.end(() => cb());
    },
    destroy(e, cb) {
      file.destroy();
      cb(e);
    },
  });
}
