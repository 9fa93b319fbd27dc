import { z } from 'zod';
import type { YamlPath } from './yaml-location.js';

/** What a vmwu.yaml may hold (the zod schema), the UnitSpec it becomes, and the hint for each field. */

export type ParamType = 'int' | 'float' | 'string' | 'bool';

export interface UnitSpec {
  name: string;
  version: string;
  base: { name: string } | { arch: string; os: string };
  /** Deduplicated and sorted, so listing order does not change the build cache key. */
  packages: string[];
  /** `from` is absolute and inside `dir`; `to` is a normalised absolute guest path. */
  files: { from: string; to: string }[];
  setup: string | null;
  /** `${param}` references are left in place, to be substituted per run. */
  run: string[] | null;
  /** `default` is the value as written in the YAML (`-2.0`, not `-2`). */
  params: Record<string, { default: string; type: ParamType }>;
  outputs: string[];
  resources: { memoryMiB?: number; cpus?: number; timeoutMs?: number; scratchBytes?: number; rootBytes?: number; nodes?: number };
  network: boolean;
  /** Datasets (`NAME[:VERSION]`, src/data/ref.ts) attached read-only at /data/NAME; resolved when a job runs. */
  data: string[];
  /** A file in the work dir the job reads on stdin (GVA's `phaser < input.pha`). */
  stdin: string | null;
  /** CPU features the unit needs (`cpu:` levels and names, normalized by src/vm/cpu.ts); empty: none stated. */
  cpu: string[];
  file: string;
  dir: string;
}

export const SPEC_FILE = 'vmwu.yaml';

const ScalarValue = z.union([z.string(), z.number(), z.boolean()]);
export const BaseObject = z.strictObject({ arch: z.string(), os: z.string() });
export const FileEntry = z.strictObject({ from: z.string(), to: z.string() });
export const Resources = z.strictObject({
  memory: z.string().nullish(),
  cpus: z.number().int().positive().nullish(),
  timeout: z.union([z.string(), z.number()]).nullish(),
  scratch: z.string().nullish(),
  root: z.string().nullish(),
  nodes: z.number().int().min(1).max(254).nullish(),
});
// Optional fields accept an empty value (`packages:` with nothing after it) as "not given".
export const SpecSchema = z.strictObject({
  name: z.string(),
  version: z.union([z.string(), z.number()]),
  base: z.union([z.string(), BaseObject]),
  packages: z.array(z.string()).nullish(),
  files: z.array(FileEntry).nullish(),
  setup: z.string().nullish(),
  run: z.union([z.string(), z.array(ScalarValue)]).nullish(),
  params: z.record(z.string(), ScalarValue).nullish(),
  outputs: z.array(z.string()).nullish(),
  resources: Resources.nullish(),
  network: z.boolean().nullish(),
  cpu: z.union([z.string(), z.array(z.string())]).nullish(),
  data: z.array(z.string()).nullish(),
  stdin: z.string().nullish(),
});
export type SpecInput = z.infer<typeof SpecSchema>;

const BASE_FORMS = 'base: tiny, base: debian:bookworm, or base: {arch: x86_64, os: linux}';
export const FIELD_HINTS: Record<string, string> = {
  name: 'lowercase letters, digits, ".", "_" and "-", starting with a letter or digit, e.g. name: mandelbrot',
  version: 'e.g. version: 1.0.0',
  base: `one of: ${BASE_FORMS}`,
  packages: 'a list of Debian packages, e.g. packages: [python3, gcc]',
  files: 'a list of {from: path in this directory, to: absolute guest path}, e.g. files: [{from: ./src, to: /app}]',
  setup: 'a shell script run once at build time, e.g. setup: make -C /app',
  run: 'a command line (run: /app/prog ${n}) or an argv list (run: [/app/prog, "${n}"])',
  params: 'a map of name: default value, e.g. params: {rows: 100, xmin: -2.0}',
  outputs: 'a list of globs relative to the work dir, e.g. outputs: ["*.ppm", "logs/*.txt"]',
  resources: 'e.g. resources: {memory: 512M, cpus: 1, timeout: 10m, scratch: 50G, root: 8G, nodes: 4}',
  data: 'a list of datasets (vmwu data add), e.g. data: [uniprot] or data: [pdb70:2024]',
  stdin: 'a file in the work dir the job reads on its standard input, e.g. stdin: input.pha',
  network: 'network: true or network: false',
  cpu: 'an x86-64 level and/or CPU features the unit needs, e.g. cpu: x86-64-v3 or cpu: [x86-64-v2, rdtscp]',
};
export const TOP_HINT = `a unit spec is a map with name, version and base, and optionally ${Object.keys(SpecSchema.shape).slice(3).join(', ')}`;

/** The hint for a problem at `path`: its top-level field's, else what a spec is. */
export function hintFor(path: YamlPath): string {
  return FIELD_HINTS[String(path[0])] ?? TOP_HINT;
}

/** Records a problem at `path`; the hint defaults to the field's (hintFor). */
export type Bad = (path: YamlPath, message: string, hint?: string, opts?: { key?: boolean }) => void;
