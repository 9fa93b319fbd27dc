import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PNG } from 'pngjs';
import { inlineDisposition, makePreview, MAX_PREVIEW_BYTES, NoPreview, PREVIEW_HEADERS, PREVIEW_NAME, rasterSize, sniffImage } from '../../../src/server/image-preview.js';

/** A real PNG of w×h. */
function png(w: number, h: number): Buffer {
  const p = new PNG({ width: w, height: h });
  p.data.fill(200);
  return PNG.sync.write(p);
}

/** The smallest JPEG-shaped bytes: SOI, an APP0, a frame header of w×h. */
function jpeg(w: number, h: number): Buffer {
  return Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x4a, 0x46, 0xff, 0xc0, 0x00, 0x0b, 0x08, h >> 8, h & 0xff, w >> 8, w & 0xff, 0x01, 0x01, 0x11, 0x00, 0xff, 0xd9]);
}

const s = (x: string) => Buffer.from(x, 'utf8');

test('the type comes from the bytes: PNG, JPEG, PGM/PPM and SVG, whatever the name', () => {
  assert.equal(sniffImage(png(2, 2)), 'png');
  assert.equal(sniffImage(jpeg(2, 2)), 'jpeg');
  assert.equal(sniffImage(s('P6\n1 1 255\n\0\0\0')), 'pnm');
  assert.equal(sniffImage(s('P2 1 1 255 0')), 'pnm');
  assert.equal(sniffImage(s('<svg xmlns="http://www.w3.org/2000/svg"/>')), 'svg');
  assert.equal(sniffImage(s('\ufeff<?xml version="1.0"?>\n<!-- plot -->\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n<svg>')), 'svg');
  for (const other of ['<html><svg></svg></html>', '<svgfoo>', 'GIF89a', '%PDF-1.7', '{"svg": 1}', '', 'P1 1 1 1', '\x89PNG\r\n', '<!-- never closed <svg>']) {
    assert.equal(sniffImage(s(other)), undefined, other);
  }
});

test('an SVG with an internal DTD subset (entities: "billion laughs") is not an image here', () => {
  const bomb = '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><svg>&b;</svg>';
  assert.equal(sniffImage(s(bomb)), undefined);
  assert.throws(() => makePreview(s(bomb)), (e: NoPreview) => e.status === 415 && e.code === 'NOT_AN_IMAGE');
});

test('raster sizes come from the PNG header and the JPEG frame header', () => {
  assert.deepEqual(rasterSize(png(7, 3), 'png'), { width: 7, height: 3 });
  assert.deepEqual(rasterSize(jpeg(640, 480), 'jpeg'), { width: 640, height: 480 });
  assert.equal(rasterSize(Buffer.from([0xff, 0xd8, 0xff, 0xda, 0, 2]), 'jpeg'), undefined, 'scan before a frame header');
  assert.equal(rasterSize(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0]), 'jpeg'), undefined, 'a segment length below 2');
  assert.equal(rasterSize(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff]), 'jpeg'), undefined, 'a segment running off the end');
  assert.equal(rasterSize(png(1, 1).subarray(0, 20), 'png'), undefined);
});

test('previews: rasters as they are, SVG as it is, PNM as PNG (small for a thumbnail)', () => {
  const p = png(3, 3);
  assert.deepEqual(makePreview(p), { type: 'png', contentType: 'image/png', body: p });
  assert.equal(makePreview(jpeg(4, 4)).contentType, 'image/jpeg');
  const svg = s('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
  assert.deepEqual(makePreview(svg), { type: 'svg', contentType: 'image/svg+xml', body: svg });
  const ppm = Buffer.concat([s('P6 1600 100 255\n'), Buffer.alloc(1600 * 100 * 3, 77)]);
  const full = PNG.sync.read(makePreview(ppm).body);
  assert.deepEqual([full.width, full.height, full.data[0]], [1600, 100, 77]);
  const thumb = makePreview(ppm, { thumb: true });
  assert.equal(thumb.contentType, 'image/png');
  const t = PNG.sync.read(thumb.body);
  assert.deepEqual([t.width, t.height, t.data[0]], [320, 20, 77]);
});

test('no preview: not an image, a broken one, too many pixels, too many bytes', () => {
  const refusal = (data: Buffer, status: number, code: string) => assert.throws(() => makePreview(data), (e: NoPreview) => {
    assert.ok(e instanceof NoPreview);
    assert.deepEqual([e.status, e.code], [status, code], e.message);
    return true;
  });
  refusal(s('<html><script>alert(1)</script></html>'), 415, 'NOT_AN_IMAGE');
  refusal(s('P6 2 2 255\n\0'), 415, 'BAD_IMAGE');
  refusal(png(1, 1).subarray(0, 12), 415, 'BAD_IMAGE');
  refusal(jpeg(30000, 30000), 413, 'TOO_BIG_TO_PREVIEW');
  const huge = png(1, 1);
  huge.writeUInt32BE(100_000, 16); // IHDR width
  huge.writeUInt32BE(100_000, 20);
  refusal(huge, 413, 'TOO_BIG_TO_PREVIEW');
  refusal(Buffer.alloc(MAX_PREVIEW_BYTES + 1), 413, 'TOO_BIG_TO_PREVIEW');
});

test('headers: no script, no loads, an opaque origin, no sniffing; the file name is reduced to safe characters', () => {
  assert.match(PREVIEW_HEADERS['content-security-policy']!, /^default-src 'none'; style-src 'unsafe-inline'; sandbox$/);
  assert.equal(PREVIEW_HEADERS['x-content-type-options'], 'nosniff');
  assert.equal(inlineDisposition('a"b\r\n<x>.svg'), 'inline; filename="a_b___x_.svg"');
  assert.ok(['x.png', 'X.JPG', 'a.jpeg', 'p.svg', 'q.pgm', 'r.ppm', 's.pnm'].every((n) => PREVIEW_NAME.test(n)));
  assert.ok(!['x.png.txt', 'svg', 'x.gif', 'x.html'].some((n) => PREVIEW_NAME.test(n)));
});
