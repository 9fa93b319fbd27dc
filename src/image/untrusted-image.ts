import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { VmwuError } from '../errors.js';
import { ACCEPTED_FORMATS, HEADER_BYTES, HeaderError, parseQcow2Header, sniffFormat, standaloneProblem, type AcceptedFormat, type Qcow2Header } from './image-header.js';
import { runTool, type ResourceLimits, type ToolResult } from './tool.js';

/**
 * qemu-img on images vmwu did not make: a user's `vmwu base add` image, a bundle's
 * layers. Three rules, each closing a way such an image could reach other host files
 * or the host's resources:
 * - the format is fixed, never probed, and only raw or qcow2 (see image-header.ts);
 * - a qcow2 is read by vmwu first and refused if it names a backing or data file, and
 *   qemu-img is then given an explicit node graph (`json:` with `file.driver=file` and
 *   `backing: null`), so it opens that one file and nothing else;
 * - qemu-img runs under CPU-time, address-space and file-size limits (prlimit).
 */

const GiB = 1024 ** 3;

/**
 * glibc reserves 64 MiB of address space per malloc arena, up to 8 per core, which
 * would make an address-space limit measure the core count instead of what qemu-img
 * uses. Two arenas keep it near its real use (about 300 MiB peak for a 1 GiB convert).
 */
const QEMU_IMG_ENV = { MALLOC_ARENA_MAX: '2' };

/** For `qemu-img info`: reading a header and its tables takes well under a second. */
export const INFO_LIMITS: ResourceLimits = { cpuSeconds: 30, addressSpace: 2 * GiB };

/**
 * For `qemu-img convert` of an image of `virtualSize` bytes. A convert used about 1 CPU
 * second per GiB on the 2-core development machine; 30 s per GiB leaves a wide margin
 * for slow hosts and compressed images. The output cannot legitimately outgrow the
 * virtual size plus qcow2 metadata (under 1/64 of it), so that caps what it may write.
 */
export function convertLimits(virtualSize: number): ResourceLimits {
  const gib = virtualSize / GiB;
  // Clamped so that a header claiming an absurd size still gives numbers prlimit parses.
  return {
    cpuSeconds: Math.min(60 + 30 * gib, 7 * 24 * 3600), addressSpace: 2 * GiB,
    fileSize: Math.min(virtualSize + Math.ceil(virtualSize / 64) + 64 * 1024 ** 2, Number.MAX_SAFE_INTEGER),
  };
}

/**
 * The image as a QEMU node graph: the format driver over the `file` protocol driver.
 * Nothing is left for QEMU to decide from the bytes or the name (a plain file name
 * with a colon could even select a network protocol).
 */
export function imageSpec(path: string, format: AcceptedFormat): string {
  const file = { driver: 'file', filename: path };
  return `json:${JSON.stringify(format === 'qcow2' ? { driver: 'qcow2', file, backing: null } : { driver: 'raw', file })}`;
}

/** qemu-img under `limits`; a limit hit is reported against `label`, the image it was reading. */
export async function runQemuImg(args: string[], limits: ResourceLimits, label: string, hint?: string): Promise<ToolResult> {
  try {
    return await runTool('qemu-img', args, { limits, env: { ...process.env, ...QEMU_IMG_ENV }, hint });
  } catch (e) {
    if (e instanceof VmwuError && e.code === 'TOOL_LIMIT') throw new VmwuError(e.code, `${label}: ${e.message}`, e.hint);
    throw e;
  }
}

/** The first bytes of a regular file (a FIFO or a device could block or never end). */
export async function readHead(path: string, label: string, code: string): Promise<{ head: Buffer; size: number }> {
  let fh;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new VmwuError(err.code === 'ENOENT' ? 'NO_IMAGE' : code, `${label}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new VmwuError(code, `${label}: not a regular file`, 'give a disk image file (copy a device or a pipe into a file first)');
    const head = Buffer.alloc(Math.min(HEADER_BYTES, st.size));
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return { head: head.subarray(0, bytesRead), size: st.size };
  } finally {
    await fh.close();
  }
}

export interface CheckedImage {
  path: string;
  format: AcceptedFormat;
  virtualSize: number;
  /** How the format was decided, for the base's description. */
  how: 'given' | 'detected';
}

const formatList = ACCEPTED_FORMATS.join(' or ');

/**
 * Decides the format of a user's image and checks that it is a standalone disk of
 * it, before qemu-img touches it. `label` names the file in errors.
 */
export async function checkUntrustedImage(path: string, label: string, given?: AcceptedFormat): Promise<CheckedImage> {
  const { head, size } = await readHead(path, label, 'BAD_IMAGE');
  if (size === 0) throw new VmwuError('BAD_IMAGE', `${label}: the file is empty`);
  let format: AcceptedFormat;
  if (given) {
    format = given;
  } else {
    const s = sniffFormat(head, basename(path));
    if (s.kind === 'other') {
      throw new VmwuError('BAD_IMAGE', `${label}: a ${s.format} image; vmwu imports only ${formatList} images`,
        `${/vmdk|vhdx|vdi|qed|vpc/.test(s.format) ? 'this format can name other files on the host, so vmwu does not read it. ' : ''}`
        + 'If you trust the image, convert it yourself: qemu-img info --backing-chain FILE (check it names no other file), then qemu-img convert -O qcow2 FILE disk.qcow2');
    }
    if (s.kind === 'ambiguous') {
      throw new VmwuError('BAD_IMAGE', `${label}: cannot tell its format: ${s.why}`,
        `if it is a raw disk, say so with --format raw; vmwu imports only ${formatList} images`);
    }
    format = s.format;
  }
  if (format === 'qcow2') checkQcow2Header(head, label, 'BAD_IMAGE');

  let info: { format?: string; 'virtual-size'?: number; 'backing-filename'?: string; 'format-specific'?: { data?: { 'data-file'?: string } } };
  try {
    info = JSON.parse((await runQemuImg(['info', '--output=json', '-U', imageSpec(path, format)], INFO_LIMITS, label)).stdout) as typeof info;
  } catch (e) {
    if (e instanceof VmwuError && (e.code === 'TOOL_MISSING' || e.code === 'TOOL_LIMIT')) throw e;
    throw new VmwuError('BAD_IMAGE', `${label}: qemu-img cannot read it as ${format}: ${(e as Error).message}`,
      given ? `check that it is a ${format} image` : `give --format ${formatList.replace(' or ', '|')} if vmwu guessed wrong`);
  }
  // vmwu's own reading of the header decided; qemu-img must agree, or something is off.
  if (info.format !== format || info['backing-filename'] !== undefined || info['format-specific']?.data?.['data-file'] !== undefined
    || typeof info['virtual-size'] !== 'number') {
    throw new VmwuError('BAD_IMAGE', `${label}: qemu-img reads it differently from vmwu (format ${info.format}, backing ${info['backing-filename'] ?? 'none'}, data file ${info['format-specific']?.data?.['data-file'] ?? 'none'})`,
      'vmwu imports only standalone raw or qcow2 images');
  }
  return { path, format, virtualSize: info['virtual-size'], how: given ? 'given' : 'detected' };
}

/** Parses and checks a qcow2 header that must stand alone. */
export function checkQcow2Header(head: Buffer, label: string, code: string, hint?: string): Qcow2Header {
  let h: Qcow2Header;
  try {
    h = parseQcow2Header(head);
  } catch (e) {
    if (!(e instanceof HeaderError)) throw e;
    throw new VmwuError(code, `${label}: not a usable qcow2 image: ${e.message}`, hint);
  }
  const problem = standaloneProblem(h);
  if (problem) {
    throw new VmwuError(code, `${label}: ${problem}; vmwu imports only standalone images`,
      hint ?? 'if you trust the image, make it standalone first (qemu-img convert -O qcow2 FILE standalone.qcow2), after checking what it names with qemu-img info');
  }
  return h;
}

/** Converts a checked image to a standalone qcow2 at `dest`, under limits. */
export async function convertUntrustedImage(img: CheckedImage, label: string, dest: string): Promise<void> {
  await runQemuImg(['convert', '-q', '-O', 'qcow2', imageSpec(img.path, img.format), dest], convertLimits(img.virtualSize), label,
    `converting ${label} failed; check that it is a healthy ${img.format} image`);
}
