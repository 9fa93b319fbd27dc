import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PNG } from 'pngjs';
import { fitWithin, isPnm, parsePnm, pnmToPng } from '../../../src/image/pnm.js';

const bin = (header: string, bytes: number[]) => Buffer.concat([Buffer.from(header, 'latin1'), Buffer.from(bytes)]);

test('P2, P3, P5 and P6 parse; comments and any whitespace in the header; samples scale to 8 bits', () => {
  const p3 = parsePnm(Buffer.from('P3\n# made in a guest\n2 1\n255\n255 0 0  0 0 255\n'));
  const p6 = parsePnm(bin('P6\t2 # width\r\n1 255\n', [255, 0, 0, 0, 0, 255]));
  assert.deepEqual(p3, p6);
  assert.equal(p3.channels, 3);
  const p2 = parsePnm(Buffer.from('P2 3 1 15\n0 15 7\n'));
  assert.deepEqual({ ...p2, data: [...p2.data] }, { width: 3, height: 1, channels: 1, data: [0, 255, 119] });
  const p5 = parsePnm(bin('P5 3 1 15\n', [0, 15, 7]));
  assert.deepEqual(p5, p2);
});

test('16-bit samples (maxval above 255) are big-endian pairs, in binary and plain form', () => {
  const p5 = parsePnm(bin('P5 2 1 65535\n', [0xff, 0xff, 0x80, 0x00]));
  assert.deepEqual([...p5.data], [255, 128]);
  assert.deepEqual([...parsePnm(Buffer.from('P2 2 1 1000 1000 500')).data], [255, 128]);
  assert.deepEqual([...parsePnm(bin('P6 1 1 300\n', [0x01, 0x2c, 0, 0, 0, 150])).data], [255, 0, 128]);
});

test('hostile headers are refused before anything is allocated for them', () => {
  const refused: [string | Buffer, RegExp][] = [
    ['GIF89a', /does not start with P2, P3, P5 or P6/],
    ['P1 1 1 1', /does not start/], ['P4 1 1\n\0', /does not start/], ['P7\nWIDTH 1', /does not start/], ['P6x', /does not start/],
    ['P6 100000 1 255\n', /width is larger than 32768/],
    ['P6 32768 32768 255\n', /32768×32768 is more than 16777216 pixels/],
    ['P6 0 1 255\n', /width is smaller than 1/],
    ['P6 -1 1 255\n', /width is not a number/],
    ['P6 8 0x10 255\n', /height is smaller than 1/], // "0", then "x10" is never read
    ['P6 1e3 1 255\n', /height is not a number/],
    ['P6 99999999999999999999999 1 255\n', /width is larger/],
    [`P6 ${'0'.repeat(40)}1 1 255\n`, /width has too many digits/],
    ['P6 1 1 65536\n', /maxval is larger than 65535/],
    ['P6 1 1 0\n', /maxval is smaller than 1/],
    ['P6 1 1', /ends before its maxval/],
    ['P6 1 1 255', /ends before its pixels/],
    ['P6 1 1 255#\n\0\0\0', /no whitespace after maxval/],
    [bin('P6 4096 4096 255\n', [1, 2, 3]), /truncated \(3 bytes for 50331648 samples\)/],
    [bin('P5 2 1 65535\n', [0, 1, 0]), /truncated/],
    ['P3 4096 4096 255\n1 2 3', /truncated/],
    ['P2 2 1 255 1 x2', /sample 1 is not a number/],
    ['P2 2 1 255\n1 256\n', /sample 1 is larger than 255/],
    ['P3 1 1 255 1 2 -3  ', /sample 2 is not a number/],
    [bin('P5 2 1 100\n', [100, 101]), /sample 1 \(101\) is above maxval 100/],
    [bin('P5 1 1 300\n', [0xff, 0xff]), /above maxval 300/],
  ];
  for (const [input, why] of refused) {
    assert.throws(() => parsePnm(typeof input === 'string' ? Buffer.from(input, 'latin1') : input), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'BAD_IMAGE', String(input));
      assert.match(e.message, why, JSON.stringify(String(input).slice(0, 40)));
      return true;
    });
  }
});

test('limits are a parameter: a smaller cap refuses what the default allows', () => {
  assert.throws(() => parsePnm(bin('P5 3 3 255\n', new Array(9).fill(0)), { maxSide: 2, maxPixels: 100 }), /width is larger than 2/);
  assert.throws(() => parsePnm(bin('P5 3 3 255\n', new Array(9).fill(0)), { maxSide: 10, maxPixels: 8 }), /more than 8 pixels/);
});

test('isPnm wants the magic and a separator', () => {
  assert.equal(isPnm(Buffer.from('P6\n')), true);
  assert.equal(isPnm(Buffer.from('P5#c\n')), true);
  assert.equal(isPnm(Buffer.from('P6')), false);
  assert.equal(isPnm(Buffer.from('P66')), false);
  assert.equal(isPnm(Buffer.from('P1 ')), false);
});

test('fitWithin averages areas down to the longest side; small images are left alone', () => {
  const img = parsePnm(bin('P5 4 2 255\n', [0, 100, 200, 255, 0, 100, 200, 255]));
  assert.equal(fitWithin(img, 4), img);
  const half = fitWithin(img, 2);
  assert.deepEqual({ w: half.width, h: half.height, d: [...half.data] }, { w: 2, h: 1, d: [50, 228] });
  const strip = fitWithin({ width: 1600, height: 100, channels: 3, data: new Uint8Array(1600 * 100 * 3).fill(9) }, 320);
  assert.deepEqual([strip.width, strip.height, strip.data.length, strip.data[0]], [320, 20, 320 * 20 * 3, 9]);
  const line = fitWithin({ width: 10000, height: 1, channels: 1, data: new Uint8Array(10000) }, 100);
  assert.deepEqual([line.width, line.height], [100, 1], 'never less than one pixel a side');
});

test('PNG out: grey stays grey, colour is RGB, and the pixels decode back', () => {
  const grey = PNG.sync.read(pnmToPng(parsePnm(Buffer.from('P2 2 1 255 10 250'))));
  assert.deepEqual([grey.width, grey.height, grey.colorType], [2, 1, 0]);
  assert.deepEqual([...grey.data], [10, 10, 10, 255, 250, 250, 250, 255]);
  const rgb = PNG.sync.read(pnmToPng(parsePnm(bin('P6 1 2 255\n', [1, 2, 3, 4, 5, 6]))));
  assert.deepEqual([rgb.width, rgb.height, rgb.colorType], [1, 2, 2]);
  assert.deepEqual([...rgb.data], [1, 2, 3, 255, 4, 5, 6, 255]);
});
