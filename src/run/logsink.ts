import { createWriteStream } from 'node:fs';
import type { Socket } from 'node:net';

export interface LogSinkResult {
  bytes: number;
  truncated: boolean;
}

/**
 * Copies a guest stream into a host log file, live (so `vmwu logs -f` sees it), up
 * to a cap: the guest is untrusted and must not be able to fill the host's disk.
 * Past the cap the stream is still drained so the guest never blocks on it.
 */
export function sinkToFile(socket: Socket, path: string, cap: number, onData?: (chunk: Buffer) => void): Promise<LogSinkResult> {
  const file = createWriteStream(path, { flags: 'a' });
  let bytes = 0;
  let truncated = false;
  socket.on('data', (chunk: Buffer) => {
    onData?.(chunk);
    if (bytes >= cap) {
      truncated = true;
      return;
    }
    const part = bytes + chunk.length > cap ? chunk.subarray(0, cap - bytes) : chunk;
    if (part.length < chunk.length) truncated = true;
    bytes += part.length;
    file.write(part);
  });
  return new Promise((resolve) => {
    const done = () => {
      if (truncated) file.write(`\n[vmwu: output truncated at ${cap} bytes]\n`);
      file.end(() => resolve({ bytes, truncated }));
    };
    socket.once('close', done);
    socket.on('error', () => undefined);
  });
}
