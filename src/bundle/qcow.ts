import { isAbsolute } from 'node:path';
import { VmwuError } from '../errors.js';
import { parseQcow2Header, HeaderError } from '../image/image-header.js';
import { imageSpec, INFO_LIMITS, readHead, runQemuImg } from '../image/untrusted-image.js';
import { hexOf, type Digest } from '../store/blobs.js';

/** Checks of the qcow2 images a bundle or the store holds: read without probing and under limits, and each layer backed by exactly its parent's blob. */

const hintFor = (code: string) => (code === 'BAD_BUNDLE'
  ? 'its digests match, so it was packed this way: it was not made by `vmwu export` from a healthy store; nothing was imported'
  : 'rebuild the unit with `vmwu build`, then export it again');

export interface Qcow2Info {
  virtualSize: number;
  backingFile: string | null;
  backingFormat: string | null;
  dataFile: string | null;
  corrupt: boolean;
}

/**
 * `qemu-img info` forced to qcow2 (never probed: a raw file must not be taken for
 * whatever its first bytes claim), without opening the backing chain, under resource
 * limits. vmwu reads the header first: an image naming an external data file is
 * refused before qemu-img runs, so no qemu-img version's handling of that host file
 * matters (convert reads it; info in QEMU 7.2 does not open it, but nothing promises that).
 */
export async function qcow2Info(path: string, label: string, code = 'BAD_BUNDLE'): Promise<Qcow2Info> {
  const { head } = await readHead(path, label, code);
  try {
    const h = parseQcow2Header(head);
    if (h.dataFile !== null) throw new VmwuError(code, `${label}: the image has an external data file${h.dataFile ? ` (${h.dataFile})` : ''}; vmwu layers never do`, hintFor(code));
  } catch (e) {
    if (!(e instanceof HeaderError)) throw e;
    throw new VmwuError(code, `${label} is not a readable qcow2 image: ${e.message}`, hintFor(code));
  }
  let stdout: string;
  try {
    ({ stdout } = await runQemuImg(['info', '--output=json', '-U', imageSpec(path, 'qcow2')], INFO_LIMITS, label));
  } catch (e) {
    if (e instanceof VmwuError && (e.code === 'TOOL_MISSING' || e.code === 'TOOL_LIMIT')) throw e;
    throw new VmwuError(code, `${label} is not a readable qcow2 image: ${(e as Error).message}`, hintFor(code));
  }
  const j = JSON.parse(stdout) as {
    'virtual-size': number; 'backing-filename'?: string; 'backing-filename-format'?: string;
    'format-specific'?: { data?: { 'data-file'?: string; corrupt?: boolean } };
  };
  return {
    virtualSize: j['virtual-size'],
    backingFile: j['backing-filename'] ?? null,
    backingFormat: j['backing-filename-format'] ?? null,
    dataFile: j['format-specific']?.data?.['data-file'] ?? null,
    corrupt: j['format-specific']?.data?.corrupt === true,
  };
}

/**
 * What makes a layer safe and portable: qcow2, backed by exactly its parent's blob
 * name (relative, so QEMU finds it next to the layer in any store), no external data
 * file (which could point anywhere on the host). `parent` null means a base root,
 * which must have no backing file at all.
 *
 * An absolute backing path (layers from an early vmwu) is refused rather than
 * rebased: `qemu-img rebase -u` rewrites the header, which changes the blob's digest,
 * so the bundle's digests would no longer name what is stored.
 */
export function checkChainLink(info: Qcow2Info, label: string, parent: Digest | null, code = 'BAD_BUNDLE'): void {
  const fail = (why: string, hint = hintFor(code)) => { throw new VmwuError(code, `${label}: ${why}`, hint); };
  if (info.corrupt) fail('qemu-img marks the image corrupt');
  if (info.dataFile !== null) fail(`the image has an external data file (${info.dataFile}); vmwu layers never do`);
  if (parent === null) {
    if (info.backingFile !== null) fail(`a base root must not have a backing file, this one names ${JSON.stringify(info.backingFile)}`);
    return;
  }
  const want = hexOf(parent);
  if (info.backingFile === want) {
    if (info.backingFormat !== null && info.backingFormat !== 'qcow2') fail(`its backing format is ${info.backingFormat}, expected qcow2`);
    return;
  }
  if (info.backingFile && isAbsolute(info.backingFile) && info.backingFile.endsWith(`/${want}`)) {
    fail(`its backing file is the absolute path ${info.backingFile}; portable layers name their parent relatively ("${want}")`,
      'rebuild the unit with this vmwu (vmwu build) and export it again; rebasing the layer in place would change its digest');
  }
  fail(`its backing file is ${info.backingFile === null ? 'missing' : JSON.stringify(info.backingFile)}, expected its parent "${want}"`);
}
