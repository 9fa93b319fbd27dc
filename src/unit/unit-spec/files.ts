import { existsSync, realpathSync, statSync } from 'node:fs';
import { posix, resolve } from 'node:path';
import { isInside } from '../../paths.js';
import { SPEC_FILE, type Bad, type UnitSpec } from './schema.js';
import { displayPath } from './yaml-location.js';

/** A spec's `files:`: what it imports from the host stays inside the spec's directory, links followed, and lands on distinct absolute guest paths. */

export function checkFiles(entries: { from: string; to: string }[], dir: string, bad: Bad): UnitSpec['files'] {
  const out: UnitSpec['files'] = [];
  const targets = new Map<string, number>();
  let realDir: string | undefined;
  const outsideHint = `files are imported from the spec's directory (${displayPath(dir)}) and below: move them there, or move ${SPEC_FILE} up`;
  entries.forEach((f, i) => {
    let ok = true;
    const fromPath = ['files', i, 'from'];
    const from = resolve(dir, f.from);
    if (!f.from.trim()) {
      bad(fromPath, 'empty path');
      ok = false;
    } else if (!isInside(resolve(dir), from)) {
      bad(fromPath, `${JSON.stringify(f.from)} points outside the spec's directory`, outsideHint);
      ok = false;
    } else if (!existsSync(from)) {
      bad(fromPath, `${JSON.stringify(f.from)} does not exist (${from})`, `paths in from are relative to the directory holding ${SPEC_FILE}`);
      ok = false;
    } else {
      // Lexically inside is not enough: a symlink in the unit could lead anywhere on the host.
      realDir ??= realpathSync(dir);
      const real = realpathSync(from);
      if (!isInside(realDir, real)) {
        bad(fromPath, `${JSON.stringify(f.from)} is a link to ${real}, outside the spec's directory`, outsideHint);
        ok = false;
      }
    }

    const toPath = ['files', i, 'to'];
    const to = posix.normalize(f.to).replace(/\/+$/, '');
    if (!f.to.startsWith('/')) {
      bad(toPath, `${JSON.stringify(f.to)} is not an absolute guest path`, 'write it like /app or /opt/data');
      ok = false;
    } else if (f.to.split('/').includes('..')) {
      bad(toPath, `${JSON.stringify(f.to)} contains ..`, 'write the guest path without ..');
      ok = false;
    } else if (f.to.includes('\0')) {
      bad(toPath, 'contains a NUL character');
      ok = false;
    } else if (to === '') {
      bad(toPath, 'cannot import over the guest\'s root directory', 'give a directory under it, like /app');
      ok = false;
    } else if (targets.has(to)) {
      bad(toPath, `${to} is already the target of files[${targets.get(to)}]`, 'give each import its own guest path');
      ok = false;
    }
    if (ok) {
      targets.set(to, i);
      // On a file, a trailing slash is kept: it says the file goes into that directory under its own name.
      out.push({ from, to: f.to.endsWith('/') && statSync(from).isFile() ? `${to}/` : to });
    }
  });
  return out;
}
