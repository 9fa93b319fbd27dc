import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after } from 'node:test';
import { parseUnitSpec } from '../../src/unit/unit-spec/load.js';
import type { UnitSpec } from '../../src/unit/unit-spec/schema.js';
import { displayPath, LocatedError } from '../../src/unit/unit-spec/yaml-location.js';

/** What the vmwu.yaml tests share: unit directories in a scratch directory, and parsing a spec's text there or expecting its refusal. */

export const scratch = mkdtempSync(join(tmpdir(), 'vmwu-spec-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;

/** A unit directory holding `files` (path → content; a value starting with `->` is a symlink). */
export function unitDir(files: Record<string, string> = {}): string {
  const dir = join(scratch, `u${dirs++}`);
  mkdirSync(dir, { recursive: true });
  for (const [p, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    if (content.startsWith('->')) symlinkSync(content.slice(2), join(dir, p));
    else writeFileSync(join(dir, p), content);
  }
  return dir;
}

export const HEAD = 'name: x\nversion: 1.0.0\nbase: tiny\n';

export function parse(text: string, dir = unitDir()): UnitSpec {
  return parseUnitSpec(text, join(dir, 'vmwu.yaml'));
}

/** Parses, expects a LocatedError, and checks its first line (after the file name) and hint. */
export function rejects(text: string, line: string, hint?: string | RegExp, dir = unitDir()): LocatedError {
  const file = join(dir, 'vmwu.yaml');
  try {
    parseUnitSpec(text, file);
  } catch (e) {
    assert.ok(e instanceof LocatedError, `expected a LocatedError, got ${String(e)}`);
    assert.equal(e.message.split('\n')[0], `${displayPath(file)}:${line}`);
    if (typeof hint === 'string') assert.equal(e.hint, hint);
    else if (hint) assert.match(e.hint ?? '', hint);
    return e;
  }
  assert.fail(`no error for:\n${text}`);
}
