#!/usr/bin/env node
// Assembles the strips a sweep computed (strip-1.ppm, strip-2.ppm, … in a results
// directory) top to bottom into one PNG.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePpm, stackRasters, writePng } from '../dist/src/image/ppm.js';

const [dir, dest] = process.argv.slice(2);
if (!dir || !dest) {
  console.error('usage: assemble-strips.mjs RESULTS_DIR OUT.png');
  process.exit(2);
}
const strips = readdirSync(dir)
  .map((f) => /^strip-(\d+)\.ppm$/.exec(f))
  .filter(Boolean)
  .sort((a, b) => Number(a[1]) - Number(b[1]))
  .map((m) => parsePpm(readFileSync(join(dir, m[0])), m[0]));
if (!strips.length) {
  console.error(`no strip-N.ppm files in ${dir}`);
  process.exit(1);
}
const image = stackRasters(strips);
writePng(dest, image);
console.log(`${strips.length} strips -> ${image.width}x${image.height} ${dest}`);
