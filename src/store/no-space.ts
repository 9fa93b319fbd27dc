import { isVmwuError, VmwuError } from '../errors.js';
import { formatBytes } from '../quantities.js';
import { freeBytes } from './free-space.js';

/** A full disk met anywhere (a write, SQLite, an external tool) reported as NO_SPACE, naming where the space ran out and the store. */

/**
 * A full disk (or quota) seen anywhere: a write's ENOSPC/EDQUOT, SQLite's
 * SQLITE_FULL, or an external tool (qemu-img, mke2fs, dpkg) that said so on stderr.
 */
export function isNoSpace(e: unknown): boolean {
  if (isVmwuError(e)) return e.code === 'NO_SPACE' || (e.code === 'TOOL_FAILED' && /No space left on device|Disk quota exceeded/i.test(e.message));
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
}

function freeOn(path: string): string {
  try {
    return `${formatBytes(freeBytes(path))} free`;
  } catch {
    return 'free space unknown';
  }
}

/**
 * Turns a full-disk failure into NO_SPACE naming where the space ran out and the
 * store; anything else is returned as it was. Callers remove what they had half
 * made before this reaches the user, so the hint can say nothing was registered.
 */
export function noSpaceError(e: unknown, where: { dir: string; store?: string }): unknown {
  if (!isNoSpace(e)) return e;
  const hint = `free space there and try again${where.store ? ` (\`vmwu gc\` removes unused layers and blobs from the store ${where.store})` : ''}; nothing half-made was registered`;
  if (isVmwuError(e) && e.code === 'NO_SPACE') {
    // Already said where; a caller that knows the store adds it to the hint.
    return where.store && !e.hint?.includes(where.store) ? new VmwuError('NO_SPACE', e.message, hint, { cause: e }) : e;
  }
  // A tool's error is its command line, then its stderr: keep the command and the line that says why.
  const lines = ((e as Error).message ?? String(e)).split('\n');
  const cause = lines.slice(1).find((l) => /No space left on device|Disk quota exceeded/i.test(l))?.trim();
  const why = cause ? `${lines[0]!.replace(/:$/, '')}: ${cause}` : lines[0]!;
  return new VmwuError('NO_SPACE', `no space left on the filesystem of ${where.dir} (${freeOn(where.dir)}): ${why}`, hint, { cause: e });
}
