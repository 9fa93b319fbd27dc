/**
 * What a disk image's first bytes say it is, read by vmwu itself, so that qemu-img is
 * never asked to guess (its probing trusts those same bytes, and several formats it
 * would pick name other host files: qcow2 backing and data files, VMDK extents).
 * Pure: callers read the bytes.
 */

/** The formats vmwu accepts from outside: neither can name another file once checked. */
export type AcceptedFormat = 'raw' | 'qcow2';
export const ACCEPTED_FORMATS: readonly AcceptedFormat[] = ['raw', 'qcow2'];

/** Enough bytes for every magic below and a qcow2 header with its extensions (they live in the first cluster, at most 2 MiB). */
export const HEADER_BYTES = 2 * 1024 * 1024;

const QCOW_MAGIC = Buffer.from('QFI\xfb', 'latin1');

/**
 * Other image formats, by the signature QEMU's own probes look for. Each is refused by
 * name: some reference other files (VMDK descriptors and extents, VHDX and VDI parents,
 * QED backing files), and the rest are rare enough that converting them first is fair.
 */
const OTHER_FORMATS: { format: string; at: number; magic: Buffer }[] = [
  { format: 'vmdk (descriptor)', at: 0, magic: Buffer.from('# Disk DescriptorFile') },
  { format: 'vmdk', at: 0, magic: Buffer.from('KDMV') },
  { format: 'vmdk (ESX COWD)', at: 0, magic: Buffer.from('COWD') },
  { format: 'vhdx', at: 0, magic: Buffer.from('vhdxfile') },
  { format: 'vpc (VHD)', at: 0, magic: Buffer.from('conectix') },
  { format: 'vdi', at: 0x40, magic: Buffer.from([0x7f, 0x10, 0xda, 0xbe]) },
  { format: 'qed', at: 0, magic: Buffer.from('QED\0', 'latin1') },
  { format: 'luks', at: 0, magic: Buffer.from([0x4c, 0x55, 0x4b, 0x53, 0xba, 0xbe]) },
  { format: 'parallels', at: 0, magic: Buffer.from('WithoutFreeSpace') },
  { format: 'parallels', at: 0, magic: Buffer.from('WithouFreSpacExt') },
  { format: 'bochs', at: 0, magic: Buffer.from('Bochs Virtual HD Image') },
  { format: 'cloop', at: 0, magic: Buffer.from('#!/bin/sh\n#V2.0 Format\n') },
];

/**
 * File name endings of image formats other than raw. A file named like one but
 * without its signature is ambiguous (a raw disk misnamed, or a damaged image), so it
 * is imported as raw only when the user says --format raw.
 */
const OTHER_EXTENSIONS = ['vmdk', 'vhd', 'vhdx', 'vpc', 'vdi', 'qed', 'qcow', 'qcow2', 'hdd', 'dmg', 'ova', 'ovf'];

export type Sniffed =
  | { kind: 'format'; format: AcceptedFormat }
  | { kind: 'other'; format: string }
  | { kind: 'ambiguous'; why: string };

/** The format of an image from its first bytes and its name, for when the user gave none. */
export function sniffFormat(head: Buffer, fileName: string): Sniffed {
  if (head.length >= 8 && head.subarray(0, 4).equals(QCOW_MAGIC)) {
    const version = head.readUInt32BE(4);
    return version === 2 || version === 3 ? { kind: 'format', format: 'qcow2' } : { kind: 'other', format: `qcow version ${version}` };
  }
  for (const o of OTHER_FORMATS) {
    if (head.length >= o.at + o.magic.length && head.subarray(o.at, o.at + o.magic.length).equals(o.magic)) return { kind: 'other', format: o.format };
  }
  const ext = /\.([A-Za-z0-9]+)$/.exec(fileName)?.[1]?.toLowerCase();
  if (ext && OTHER_EXTENSIONS.includes(ext)) return { kind: 'ambiguous', why: `it is named .${ext} but does not start with a ${ext} header` };
  return { kind: 'format', format: 'raw' };
}

export interface Qcow2Header {
  version: 2 | 3;
  clusterBits: number;
  virtualSize: number;
  /** The backing file name the header carries, or null when it has none. */
  backingFile: string | null;
  /** The external data file named in the header extension, '' when only the feature bit says so, null when none. */
  dataFile: string | null;
  encrypted: boolean;
  corrupt: boolean;
  /** Incompatible feature bits this parser does not know (QEMU refuses them too). */
  unknownFeatures: bigint;
}

/** Incompatible feature bits (docs/interop/qcow2.txt): dirty, corrupt, external data file, compression type, extended L2. */
const INCOMPAT_CORRUPT = 1n << 1n;
const INCOMPAT_DATA_FILE = 1n << 2n;
const INCOMPAT_KNOWN = (1n << 5n) - 1n;
const EXT_DATA_FILE = 0x44415441;
const EXT_END = 0;

export class HeaderError extends Error {}

/**
 * The fields of a qcow2 header that decide what else QEMU would open, checked against
 * the bytes (the qcow2 spec, docs/interop/qcow2.txt). Throws HeaderError when the
 * bytes are not a well-formed qcow2 v2/v3 header.
 */
export function parseQcow2Header(head: Buffer): Qcow2Header {
  if (head.length < 72 || !head.subarray(0, 4).equals(QCOW_MAGIC)) throw new HeaderError('it does not start with the qcow2 magic "QFI\\xfb"');
  const version = head.readUInt32BE(4);
  if (version !== 2 && version !== 3) throw new HeaderError(`qcow2 version ${version} is not 2 or 3`);
  const backingOffset = head.readBigUInt64BE(8);
  const backingSize = head.readUInt32BE(16);
  const clusterBits = head.readUInt32BE(20);
  if (clusterBits < 9 || clusterBits > 21) throw new HeaderError(`cluster_bits ${clusterBits} is outside 9..21`);
  const virtualSize = head.readBigUInt64BE(24);
  const encrypted = head.readUInt32BE(32) !== 0;

  let incompatible = 0n;
  let headerLength = 72;
  if (version === 3) {
    if (head.length < 104) throw new HeaderError('the qcow2 v3 header is cut short');
    incompatible = head.readBigUInt64BE(72);
    headerLength = head.readUInt32BE(100);
    if (headerLength < 104 || headerLength % 8 !== 0) throw new HeaderError(`header_length ${headerLength} is not a multiple of 8 of at least 104`);
  }

  let backingFile: string | null = null;
  if (backingOffset !== 0n) {
    // Named even when it cannot be read back, so the refusal says what was there.
    const start = Number(backingOffset);
    const end = start + Math.min(backingSize, 1023);
    backingFile = backingOffset < BigInt(head.length) && end <= head.length ? head.subarray(start, end).toString('utf8') : `(${backingSize} bytes at offset ${backingOffset})`;
  }

  let dataFile: string | null = (incompatible & INCOMPAT_DATA_FILE) !== 0n ? '' : null;
  // Header extensions follow the header; each is type, length, data padded to 8 bytes.
  const clusterEnd = Math.min(head.length, 2 ** clusterBits);
  for (let at = headerLength; at + 8 <= clusterEnd;) {
    const type = head.readUInt32BE(at);
    const len = head.readUInt32BE(at + 4);
    if (type === EXT_END) break;
    if (at + 8 + len > clusterEnd) throw new HeaderError(`header extension 0x${type.toString(16)} at offset ${at} runs past the first cluster`);
    if (type === EXT_DATA_FILE) dataFile = head.subarray(at + 8, at + 8 + len).toString('utf8');
    at += 8 + Math.ceil(len / 8) * 8;
  }

  return {
    version, clusterBits, virtualSize: Number(virtualSize), backingFile, dataFile, encrypted,
    corrupt: (incompatible & INCOMPAT_CORRUPT) !== 0n,
    unknownFeatures: incompatible & ~INCOMPAT_KNOWN,
  };
}

/** Why a qcow2 from outside cannot be taken as a standalone disk, or null when it can. */
export function standaloneProblem(h: Qcow2Header): string | null {
  if (h.backingFile !== null) return `it has a backing file (${JSON.stringify(h.backingFile)}), which would be read from the host`;
  if (h.dataFile !== null) return `it has an external data file${h.dataFile ? ` (${JSON.stringify(h.dataFile)})` : ''}, which would be read from the host`;
  if (h.encrypted) return 'it is encrypted';
  if (h.corrupt) return 'its header marks it corrupt';
  if (h.unknownFeatures !== 0n) return `it uses incompatible features unknown to vmwu (bits 0x${h.unknownFeatures.toString(16)})`;
  return null;
}
