import { relative, sep } from 'node:path';
import type { UnitSpec } from './schema.js';

/** The part of a spec that decides its built image, as the build cache key's material. */

/**
 * What decides the built image, as canonical JSON (sorted keys, no whitespace), for the
 * build cache key. Name, version and everything used only at run time are left out, so
 * units that build the same image share it. `files` are named relative to the spec's
 * directory so moving the unit keeps the key; the caller adds the files' content hashes
 * and the resolved base's digest, which this cannot know.
 */
export function buildKeyMaterial(spec: UnitSpec): string {
  return canonicalJson({
    // 2: a file source becomes `to` (or goes into a `to` ending in / under its own name); 1 put it into `to` as file<N>.
    format: 2,
    base: 'name' in spec.base ? { name: spec.base.name } : { arch: spec.base.arch, os: spec.base.os },
    packages: [...new Set(spec.packages)].sort(),
    files: spec.files.map((f) => ({ from: relative(spec.dir, f.from).split(sep).join('/') || '.', to: f.to })),
    setup: spec.setup,
  });
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
