/**
 * Rewrites the checksum of every tar header reachable by walking the archive, so that
 * mutations of names, sizes, types and link targets get past the checksum test (which a
 * random edit fails 255 times in 256) and reach the code behind it.
 */
const BLOCK = 512;

export function fixTarChecksums(input: Uint8Array): Buffer {
  const b = Buffer.from(input);
  let at = 0;
  while (at + BLOCK <= b.length) {
    const h = b.subarray(at, at + BLOCK);
    if (h.every((x) => x === 0)) break;
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const x of h) sum += x;
    // As tar-stream writes it (six digits, a space, a NUL), which the bundle reader insists on.
    h.write(`${sum.toString(8).padStart(6, '0')} \0`, 148, 'latin1');
    const size = sizeOf(h);
    if (size === null) break;
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return b;
}

/** The size field: octal text, or base-256 when the high bit of its first byte is set. */
function sizeOf(h: Buffer): number | null {
  const f = h.subarray(124, 136);
  let n = 0;
  if (f[0]! & 0x80) {
    for (let i = 1; i < f.length; i++) n = n * 256 + f[i]!;
  } else {
    const text = f.toString('latin1').replace(/[\0 ].*$/s, '').trim();
    if (text && !/^[0-7]+$/.test(text)) return null;
    n = text ? parseInt(text, 8) : 0;
  }
  return Number.isSafeInteger(n) ? n : null;
}
