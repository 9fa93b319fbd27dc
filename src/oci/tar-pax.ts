import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * tar-stream decodes every PAX record as UTF-8, which loses the bytes of a binary
 * extended attribute (`SCHILY.xattr.security.capability`, as GNU tar and Docker write
 * it). This replaces its PAX decoder, once, with one that keeps `SCHILY.xattr.*`
 * values byte for byte (as latin1 strings: Buffer.from(v, 'latin1') gives the bytes
 * back) and every other record as before. test/unit/oci/layer-reader.test.ts holds a
 * binary capability that fails if a tar-stream release stops calling it.
 */

const XATTR = 'SCHILY.xattr.';
let patched = false;

export function keepBinaryXattrs(): void {
  if (patched) return;
  const require = createRequire(import.meta.url);
  // The decoder is not exported; its module is the one tar-stream's extractor holds.
  const headers = require(join(dirname(require.resolve('tar-stream')), 'headers.js')) as { decodePax: (b: Buffer) => Record<string, string> };
  headers.decodePax = (buf: Buffer) => {
    const out: Record<string, string> = {};
    while (buf.length) {
      let i = 0;
      while (i < buf.length && buf[i] !== 32) i++;
      const len = parseInt(buf.subarray(0, i).toString('utf8'), 10);
      if (!len || len > buf.length) return out;
      const rec = buf.subarray(i + 1, len - 1);
      const eq = rec.indexOf(61);
      if (eq === -1) return out;
      const key = rec.subarray(0, eq).toString('utf8');
      out[key] = rec.subarray(eq + 1).toString(key.startsWith(XATTR) ? 'latin1' : 'utf8');
      buf = buf.subarray(len);
    }
    return out;
  };
  patched = true;
}

/** The extended attributes of an entry's PAX records: name → bytes (LIBARCHIVE.xattr.* values are base64). */
export function paxXattrs(pax: Record<string, string> | null | undefined): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  if (!pax) return out;
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith(XATTR)) out.set(k.slice(XATTR.length), Buffer.from(v, 'latin1'));
    else if (k.startsWith('LIBARCHIVE.xattr.')) out.set(decodeURIComponent(k.slice('LIBARCHIVE.xattr.'.length)), Buffer.from(v, 'base64'));
  }
  return out;
}
