import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';
import { VmwuError } from '../errors.js';

/** PPM images that jobs write (the Mandelbrot example computes one in strips): read with every size and sample checked, stacked, and written as PNG. */

/** An RGB raster, 8 bits per channel. */
export interface Raster {
  width: number;
  height: number;
  rgb: Uint8Array;
}

const MAX_PIXELS = 64 * 1024 * 1024;

/**
 * Parses a PPM image (P3 text or P6 binary, maxval ≤ 255). Images come from
 * guests, so sizes are capped and every sample is checked.
 */
export function parsePpm(data: Buffer, name = 'image'): Raster {
  let pos = 0;
  const bad = (why: string) => new VmwuError('BAD_PPM', `${name}: not a valid PPM image: ${why}`);
  const token = (): string => {
    for (;;) {
      while (pos < data.length && /\s/.test(String.fromCharCode(data[pos]!))) pos++;
      if (data[pos] === 0x23) { // '#': comment to end of line
        while (pos < data.length && data[pos] !== 0x0a) pos++;
        continue;
      }
      break;
    }
    const start = pos;
    while (pos < data.length && !/\s/.test(String.fromCharCode(data[pos]!))) pos++;
    if (start === pos) throw bad('unexpected end of data');
    return data.toString('latin1', start, pos);
  };
  const magic = token();
  if (magic !== 'P3' && magic !== 'P6') throw bad(`magic is ${JSON.stringify(magic.slice(0, 8))}, expected P3 or P6`);
  const width = Number(token());
  const height = Number(token());
  const maxval = Number(token());
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw bad('bad dimensions');
  if (width * height > MAX_PIXELS) throw bad(`${width}x${height} is larger than allowed`);
  if (!Number.isInteger(maxval) || maxval < 1 || maxval > 255) throw bad('maxval must be 1..255');
  const n = width * height * 3;
  const rgb = new Uint8Array(n);
  const scale = 255 / maxval;
  if (magic === 'P6') {
    pos++; // exactly one whitespace byte after maxval
    if (data.length - pos < n) throw bad('truncated pixel data');
    for (let i = 0; i < n; i++) rgb[i] = Math.round(data[pos + i]! * scale);
  } else {
    for (let i = 0; i < n; i++) {
      const v = Number(token());
      if (!Number.isInteger(v) || v < 0 || v > maxval) throw bad(`sample ${i} is out of range`);
      rgb[i] = Math.round(v * scale);
    }
  }
  return { width, height, rgb };
}

/** Stacks strips of equal width top to bottom (a sweep computes a picture in strips). */
export function stackRasters(strips: Raster[]): Raster {
  if (!strips.length) throw new VmwuError('BAD_PPM', 'no strips to assemble');
  const width = strips[0]!.width;
  const bad = strips.find((s) => s.width !== width);
  if (bad) throw new VmwuError('BAD_PPM', `strips differ in width (${width} and ${bad.width})`);
  const height = strips.reduce((h, s) => h + s.height, 0);
  const rgb = new Uint8Array(width * height * 3);
  let off = 0;
  for (const s of strips) {
    rgb.set(s.rgb, off);
    off += s.rgb.length;
  }
  return { width, height, rgb };
}

export function encodePng(r: Raster): Buffer {
  const png = new PNG({ width: r.width, height: r.height });
  for (let i = 0, j = 0; i < r.rgb.length; i += 3, j += 4) {
    png.data[j] = r.rgb[i]!;
    png.data[j + 1] = r.rgb[i + 1]!;
    png.data[j + 2] = r.rgb[i + 2]!;
    png.data[j + 3] = 255;
  }
  return PNG.sync.write(png);
}

export function writePng(path: string, r: Raster): void {
  writeFileSync(path, encodePng(r));
}
