import { PNG } from 'pngjs';
import { VmwuError } from '../errors.js';

/**
 * PGM and PPM images (P2/P5 grey, P3/P6 colour; maxval up to 65535) as guests write
 * them, turned into PNG for the dashboard, which browsers cannot show otherwise. The
 * bytes are hostile: every number in the header is bounded before it is used, the
 * pixel count is capped, and nothing is allocated before the data is known to be
 * long enough to fill it, so a header cannot make this allocate more than about its
 * file's size. Pure: bytes in, bytes out.
 */

export interface PnmImage {
  width: number;
  height: number;
  /** 1: grey (P2, P5); 3: RGB (P3, P6). */
  channels: 1 | 3;
  /** Samples scaled to 0..255, row by row, channels interleaved. */
  data: Uint8Array;
}

export interface PnmLimits {
  /** Largest width or height. */
  maxSide: number;
  /** Largest width × height. */
  maxPixels: number;
}

/** 16 Mpixel (48 MiB of RGB samples at most) and 32768 pixels a side: far beyond a job's plots, well within a server's memory. */
export const PNM_LIMITS: PnmLimits = { maxSide: 32768, maxPixels: 1 << 24 };

const MAGIC: Record<string, { channels: 1 | 3; binary: boolean }> = {
  P2: { channels: 1, binary: false }, P3: { channels: 3, binary: false },
  P5: { channels: 1, binary: true }, P6: { channels: 3, binary: true },
};

const isSpace = (b: number | undefined) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0b || b === 0x0c;
const isDigit = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x39;

/** Whether `head` begins like a PNM this module reads (the magic and a separator). */
export function isPnm(head: Uint8Array): boolean {
  return head.length >= 3 && head[0] === 0x50 && [0x32, 0x33, 0x35, 0x36].includes(head[1]!) && (isSpace(head[2]) || head[2] === 0x23);
}

export function parsePnm(data: Uint8Array, limits: PnmLimits = PNM_LIMITS): PnmImage {
  const bad = (why: string) => new VmwuError('BAD_IMAGE', `not a readable PGM/PPM image: ${why}`);
  if (!isPnm(data)) throw bad('it does not start with P2, P3, P5 or P6 and a separator');
  const kind = MAGIC[String.fromCharCode(data[0]!, data[1]!)]!;
  let pos = 2;
  const skip = () => {
    for (;;) {
      while (pos < data.length && isSpace(data[pos])) pos++;
      if (data[pos] !== 0x23) return;
      // A comment runs to the end of its line.
      while (pos < data.length && data[pos] !== 0x0a && data[pos] !== 0x0d) pos++;
    }
  };
  // A decimal number in min..max: digits only (no sign, exponent or hex); the digit cap bounds a run of leading zeros.
  const number = (what: string, min: number, max: number): number => {
    skip();
    const start = pos;
    let v = 0;
    while (isDigit(data[pos])) {
      v = v * 10 + (data[pos]! - 0x30);
      pos++;
      if (v > max) throw bad(`${what} is larger than ${max}`);
      if (pos - start > 16) throw bad(`${what} has too many digits`);
    }
    if (pos === start) throw bad(pos >= data.length ? `it ends before its ${what}` : `${what} is not a number`);
    if (v < min) throw bad(`${what} is smaller than ${min}`);
    return v;
  };
  const width = number('width', 1, limits.maxSide);
  const height = number('height', 1, limits.maxSide);
  if (width * height > limits.maxPixels) throw bad(`${width}×${height} is more than ${limits.maxPixels} pixels`);
  const maxval = number('maxval', 1, 65535);
  const n = width * height * kind.channels;
  // maxval → 0..255 for every possible sample: at most 64 KiB, and no division per sample.
  const scale = new Uint8Array(maxval + 1);
  for (let v = 0; v <= maxval; v++) scale[v] = Math.round((v * 255) / maxval);
  if (kind.binary) {
    // Exactly one whitespace byte separates maxval from the raster.
    if (!isSpace(data[pos])) throw bad(pos >= data.length ? 'it ends before its pixels' : 'no whitespace after maxval');
    pos++;
    const wide = maxval > 255;
    if (data.length - pos < n * (wide ? 2 : 1)) throw bad(`its pixels are truncated (${data.length - pos} bytes for ${n} samples)`);
    const out = new Uint8Array(n);
    for (let i = 0, p = pos; i < n; i++) {
      const v = wide ? (data[p]! << 8) | data[p + 1]! : data[p]!;
      p += wide ? 2 : 1;
      if (v > maxval) throw bad(`sample ${i} (${v}) is above maxval ${maxval}`);
      out[i] = scale[v]!;
    }
    return { width, height, channels: kind.channels, data: out };
  }
  // Plain: each sample is at least one digit and one separator, so a short file is refused before the allocation.
  if (data.length - pos < 2 * n) throw bad(`its pixels are truncated (${data.length - pos} bytes cannot hold ${n} samples)`);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = scale[number(`sample ${i}`, 0, maxval)]!;
  }
  return { width, height, channels: kind.channels, data: out };
}

/** The image scaled down (area average) so neither side exceeds `maxSide`; the same image when it already fits. */
export function fitWithin(img: PnmImage, maxSide: number): PnmImage {
  const { width: w, height: h, channels: c } = img;
  if (w <= maxSide && h <= maxSide) return img;
  const s = maxSide / Math.max(w, h);
  const tw = Math.max(1, Math.round(w * s));
  const th = Math.max(1, Math.round(h * s));
  const out = new Uint8Array(tw * th * c);
  for (let ty = 0; ty < th; ty++) {
    const y0 = Math.floor((ty * h) / th);
    const y1 = Math.max(y0 + 1, Math.floor(((ty + 1) * h) / th));
    for (let tx = 0; tx < tw; tx++) {
      const x0 = Math.floor((tx * w) / tw);
      const x1 = Math.max(x0 + 1, Math.floor(((tx + 1) * w) / tw));
      const count = (y1 - y0) * (x1 - x0);
      for (let ch = 0; ch < c; ch++) {
        let sum = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += img.data[(y * w + x) * c + ch]!;
        out[(ty * tw + tx) * c + ch] = Math.round(sum / count);
      }
    }
  }
  return { width: tw, height: th, channels: c, data: out };
}

/** PNG of the image: grey stays grey (colour type 0), colour is RGB (type 2), 8 bits, no alpha. */
export function pnmToPng(img: PnmImage): Buffer {
  const colorType = img.channels === 1 ? 0 : 2;
  const data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  // pngjs's writer reads only width, height and data; a PNG object would first allocate RGBA for nothing.
  return PNG.sync.write({ width: img.width, height: img.height, data } as unknown as PNG,
    { colorType, inputColorType: colorType, inputHasAlpha: false, bitDepth: 8, deflateLevel: 6 });
}
