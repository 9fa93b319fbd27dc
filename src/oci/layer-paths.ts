import { controlCharIndex } from '../control-chars.js';
import { VmwuError } from '../errors.js';

/**
 * The names in an image layer, checked as untrusted input: relative, no `..`, no control
 * characters, links that stay inside the root; and OCI whiteouts told apart. Pure.
 */

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_WHITEOUT = '.wh..wh..opq';

/** Where a refusal points: the layer (by its position and digest) and the entry's name. */
export interface EntryPlace {
  layer: string;
  name: string;
}

export function badEntry(at: EntryPlace, why: string): VmwuError {
  const name = JSON.stringify(at.name).slice(1, -1);
  return new VmwuError('BAD_IMAGE_LAYER', `${at.layer}: entry "${name}" ${why}`, 'the image is damaged or crafted to write outside its root; nothing was registered');
}

/** An entry's path as components below the root; `[]` is the root itself. */
export function entryPath(name: string, at: EntryPlace): string[] {
  if (name.startsWith('/')) throw badEntry(at, 'has an absolute path');
  if (controlCharIndex(name) !== -1) throw badEntry(at, 'has a control character in its name');
  const parts: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw badEntry(at, 'climbs out of its directory (..)');
    parts.push(c);
  }
  return parts;
}

/** A whiteout hides a lower layer's path: `.wh.NAME` that name, `.wh..wh..opq` everything below its directory. */
export type Whiteout = { kind: 'path'; path: string[] } | { kind: 'opaque'; dir: string[] };

export function whiteoutOf(path: string[]): Whiteout | null {
  const last = path[path.length - 1];
  if (last === undefined || !last.startsWith(WHITEOUT_PREFIX)) return null;
  const dir = path.slice(0, -1);
  if (last === OPAQUE_WHITEOUT) return { kind: 'opaque', dir };
  return { kind: 'path', path: [...dir, last.slice(WHITEOUT_PREFIX.length)] };
}

/**
 * A symbolic link's target, checked: printable, and a relative one must not climb
 * above the root from where the link sits (an absolute one is the guest's own
 * root, which it cannot leave).
 */
export function checkLinkTarget(linkDir: string[], target: string, at: EntryPlace): void {
  if (target === '') throw badEntry(at, 'is a link with an empty target');
  if (controlCharIndex(target) !== -1) throw badEntry(at, 'is a link whose target has a control character');
  if (target.startsWith('/')) return;
  let depth = linkDir.length;
  for (const c of target.split('/')) {
    if (c === '..') depth--;
    else if (c !== '' && c !== '.') depth++;
    if (depth < 0) throw badEntry(at, `is a link out of the root (to ${JSON.stringify(target)})`);
  }
}
