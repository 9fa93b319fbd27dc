import type { Duplex } from 'node:stream';
import { FrameReader } from './guest-frames.js';

/**
 * The frames a QEMU `-netdev stream` peer sends (each behind its 4-byte length),
 * handed over as they complete. A peer that breaks the framing (a frame longer
 * than any Ethernet frame) is cut off: nothing it sends after is trusted.
 */
export function onFrames(from: Duplex, each: (frames: Buffer[]) => void): void {
  const reader = new FrameReader();
  from.on('data', (chunk: Buffer) => {
    let frames: Buffer[];
    try {
      frames = reader.push(chunk);
    } catch {
      from.destroy();
      return;
    }
    each(frames);
  });
}
