import { VmwuError } from './errors.js';

/** Sizes and durations as users write them (512M, 1h30m) turned into bytes and milliseconds, and bytes written back for people to read. */

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "30s", "10m", "1h30m", "1500ms", or a bare number of seconds → milliseconds. */
export function parseDuration(text: string, field = 'duration'): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(t))) {
    total += Number(m[1]) * durationUnits[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (!t || consumed !== t.length || total <= 0) {
    throw new VmwuError('BAD_VALUE', `${field}: "${text}" is not a duration`, 'write it like 30s, 10m, 1h30m or 1500ms');
  }
  return Math.round(total);
}

const sizeUnits: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "512M", "2G", "1.5g", "4096k", "100" (bytes) → bytes (binary units). */
export function parseSize(text: string, field = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  if (!m || Number(m[1]) <= 0) throw new VmwuError('BAD_VALUE', `${field}: "${text}" is not a size`, 'write it like 512M, 2G or 4096k');
  return Math.round(Number(m[1]) * sizeUnits[m[2]!.toLowerCase()]!);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A size (`20G`) or a share of something (`10%`). */
export type SizeOrShare = { bytes: number } | { share: number };

/** "20G", "300M" → bytes; "10%" → a share (more than 0, at most 1). */
export function parseSizeOrShare(text: string, field: string): SizeOrShare {
  const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(text.trim());
  if (pct) {
    const n = Number(pct[1]);
    if (n <= 0 || n > 100) throw new VmwuError('BAD_VALUE', `${field}: "${text}" is not a share`, 'write it like 10% (more than 0, at most 100)');
    return { share: n / 100 };
  }
  return { bytes: parseSize(text, field) };
}
