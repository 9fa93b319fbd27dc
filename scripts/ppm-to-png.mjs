#!/usr/bin/env node
// Converts a PPM image (as written by the Mandelbrot demo in the guest) to PNG.
import { readFileSync } from 'node:fs';
import { parsePpm, writePng } from '../dist/src/image/ppm.js';

const [src, dest] = process.argv.slice(2);
if (!src || !dest) {
  console.error('usage: ppm-to-png.mjs IN.ppm OUT.png');
  process.exit(2);
}
writePng(dest, parsePpm(readFileSync(src), src));
