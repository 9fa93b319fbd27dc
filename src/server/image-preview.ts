import { VmwuError } from '../errors.js';
import { fitWithin, isPnm, parsePnm, pnmToPng } from '../image/pnm.js';

/**
 * Previews of a job's image outputs in the dashboard. Guests write these files, so
 * nothing about them is trusted: the type comes from the bytes (never the name), only
 * PNG, JPEG, SVG and PGM/PPM are shown, the file and its pixel count are capped, PNM is
 * re-encoded as PNG here, and every answer carries headers that stop a browser from
 * running anything in it (an SVG's scripts included). Pure: bytes in, an answer out.
 */

export type ImageType = 'png' | 'jpeg' | 'svg' | 'pnm';

/** Larger files are not previewed (they still download). */
export const MAX_PREVIEW_BYTES = 20 * 1024 * 1024;
/** Larger PNGs and JPEGs are not previewed: the browser would hold width × height × 4 bytes to show one. */
export const MAX_BROWSER_PIXELS = 40_000_000;
/** A thumbnail of a PNM is made here, this many pixels a side at most (others are scaled by the browser). */
export const THUMB_SIDE = 320;
/** How many bytes decide the type: enough for an SVG's XML declaration and a comment or two before `<svg`. */
export const SNIFF_BYTES = 4096;

/** Names the dashboard offers a preview for. Only an offer: the bytes decide whether and how it is served. */
export const PREVIEW_NAME = /\.(png|jpe?g|svg|pgm|ppm|pnm)$/i;

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Skips what may come before an SVG's root element; the position of `<svg`, or -1. */
function svgRoot(text: string): number {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    const rest = text.slice(i, i + 9);
    if (rest.startsWith('<?xml')) {
      const end = text.indexOf('?>', i);
      if (end < 0) return -1;
      i = end + 2;
    } else if (rest.startsWith('<!--')) {
      const end = text.indexOf('-->', i + 4);
      if (end < 0) return -1;
      i = end + 3;
    } else if (rest.toUpperCase() === '<!DOCTYPE') {
      const end = text.indexOf('>', i);
      // An internal subset ([…]) can declare entities, the stuff of "billion laughs": not previewed.
      if (end < 0 || text.slice(i, end).includes('[')) return -1;
      i = end + 1;
    } else {
      return /^<svg[\s/>]/.test(text.slice(i, i + 5)) ? i : -1;
    }
  }
}

/** The image type of a file from its first bytes, or undefined for anything else. */
export function sniffImage(head: Uint8Array): ImageType | undefined {
  if (head.length >= 8 && PNG_MAGIC.every((b, i) => head[i] === b)) return 'png';
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (isPnm(head)) return 'pnm';
  const text = Buffer.from(head.buffer, head.byteOffset, Math.min(head.byteLength, SNIFF_BYTES)).toString('utf8');
  if (svgRoot(text) >= 0) return 'svg';
  return undefined;
}

/** Width and height from a PNG's IHDR or a JPEG's frame header; undefined when the file has none where it must. */
export function rasterSize(data: Uint8Array, type: 'png' | 'jpeg'): { width: number; height: number } | undefined {
  const u16 = (p: number) => (data[p]! << 8) | data[p + 1]!;
  const u32 = (p: number) => ((data[p]! << 24) >>> 0) + ((data[p + 1]! << 16) | (data[p + 2]! << 8) | data[p + 3]!);
  if (type === 'png') {
    // IHDR is the first chunk: length 13, then its name, width and height.
    if (data.length < 24 || u32(8) !== 13 || Buffer.from(data.subarray(12, 16)).toString('latin1') !== 'IHDR') return undefined;
    return { width: u32(16), height: u32(20) };
  }
  let p = 2;
  while (p + 4 <= data.length) {
    if (data[p] !== 0xff) return undefined;
    const marker = data[p + 1]!;
    if (marker === 0xff) { p++; continue; } // fill byte
    if ((marker >= 0xd0 && marker <= 0xd9) || marker === 0x01) { p += 2; continue; } // no length
    const len = u16(p + 2);
    if (len < 2) return undefined;
    // SOF0..SOF15, except DHT (c4), JPG (c8) and DAC (cc): precision, height, width.
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return p + 9 <= data.length ? { height: u16(p + 5), width: u16(p + 7) } : undefined;
    }
    if (marker === 0xda) return undefined; // scan data before any frame header
    p += 2 + len;
  }
  return undefined;
}

export interface Preview {
  type: ImageType;
  contentType: string;
  body: Buffer;
}

/** Why a file gets no preview: an HTTP status and the API's error code. */
export class NoPreview extends VmwuError {
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(code, message, 'download the file instead');
    this.status = status;
  }
}

const CONTENT_TYPES: Record<ImageType, string> = { png: 'image/png', jpeg: 'image/jpeg', svg: 'image/svg+xml', pnm: 'image/png' };

/**
 * Headers every preview carries. `sandbox` with no allowances gives the answer an
 * opaque origin and no scripts even when opened on its own (an SVG is a document
 * then); `default-src 'none'` stops it from loading anything; inline styles are all an
 * SVG may keep. The dashboard shows previews only through <img>, where SVG runs no
 * script anyway. `nosniff` keeps the browser to the Content-Type sniffed here.
 */
export const PREVIEW_HEADERS: Record<string, string> = {
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; sandbox",
  'x-content-type-options': 'nosniff',
  'cache-control': 'private, max-age=60',
};

/** The preview of a file's bytes (all of them, at most MAX_PREVIEW_BYTES): as it is for PNG, JPEG and SVG, re-encoded as PNG for PNM, scaled down for a PNM thumbnail. */
export function makePreview(data: Buffer, o: { thumb?: boolean } = {}): Preview {
  if (data.length > MAX_PREVIEW_BYTES) throw new NoPreview(413, 'TOO_BIG_TO_PREVIEW', `the file is larger than ${MAX_PREVIEW_BYTES / 1024 / 1024} MiB`);
  const type = sniffImage(data.subarray(0, SNIFF_BYTES));
  if (!type) throw new NoPreview(415, 'NOT_AN_IMAGE', 'the file is not a PNG, JPEG, SVG, PGM or PPM image');
  if (type === 'png' || type === 'jpeg') {
    const size = rasterSize(data, type);
    if (!size) throw new NoPreview(415, 'BAD_IMAGE', `the ${type.toUpperCase()} has no readable size`);
    if (size.width * size.height > MAX_BROWSER_PIXELS) throw new NoPreview(413, 'TOO_BIG_TO_PREVIEW', `${size.width}×${size.height} is more pixels than a preview shows`);
    return { type, contentType: CONTENT_TYPES[type], body: data };
  }
  if (type === 'svg') return { type, contentType: CONTENT_TYPES.svg, body: data };
  let img;
  try {
    img = parsePnm(data);
  } catch (e) {
    throw new NoPreview(415, 'BAD_IMAGE', (e as Error).message);
  }
  return { type, contentType: CONTENT_TYPES.pnm, body: pnmToPng(o.thumb ? fitWithin(img, THUMB_SIDE) : img) };
}

/** A content-disposition value for showing a file inline, its name reduced to safe characters. */
export function inlineDisposition(name: string): string {
  return `inline; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}"`;
}
