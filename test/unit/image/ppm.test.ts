import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PNG } from 'pngjs';
import { encodePng, parsePpm, stackRasters } from '../../../src/image/ppm.js';

test('P3 and P6 parse to the same raster, comments allowed', () => {
  const p3 = parsePpm(Buffer.from('P3\n# made in a guest\n2 1\n255\n255 0 0  0 0 255\n'));
  const p6 = parsePpm(Buffer.concat([Buffer.from('P6 2 1 255\n'), Buffer.from([255, 0, 0, 0, 0, 255])]));
  assert.deepEqual(p3, p6);
  assert.deepEqual([...p3.rgb], [255, 0, 0, 0, 0, 255]);
});

test('maxval scales to 8 bits', () => {
  assert.deepEqual([...parsePpm(Buffer.from('P3 1 1 15 15 0 7')).rgb], [255, 0, 119]);
});

test('bad images are refused with the reason', () => {
  assert.throws(() => parsePpm(Buffer.from('GIF89a'), 'x.ppm'), /x.ppm: not a valid PPM image: magic/);
  assert.throws(() => parsePpm(Buffer.from('P3 2 1 255 1 2 3')), /unexpected end/);
  assert.throws(() => parsePpm(Buffer.from('P3 1 1 255 1 2 300')), /out of range/);
  assert.throws(() => parsePpm(Buffer.from('P3 100000 100000 255')), /larger than allowed/);
  assert.throws(() => parsePpm(Buffer.from('P6 2 2 255\n\x01')), /truncated/);
});

test('strips stack into one PNG that decodes back to the same pixels', () => {
  const a = parsePpm(Buffer.from('P3 2 1 255 1 2 3 4 5 6'));
  const b = parsePpm(Buffer.from('P3 2 2 255 7 8 9 10 11 12 13 14 15 16 17 18'));
  const all = stackRasters([a, b]);
  assert.equal(all.height, 3);
  const png = PNG.sync.read(encodePng(all));
  assert.equal(png.width, 2);
  assert.equal(png.height, 3);
  assert.deepEqual([...png.data.subarray(0, 8)], [1, 2, 3, 255, 4, 5, 6, 255]);
  assert.deepEqual([...png.data.subarray(20, 24)], [16, 17, 18, 255]);
  assert.throws(() => stackRasters([a, parsePpm(Buffer.from('P3 1 1 255 0 0 0'))]), /differ in width/);
});
