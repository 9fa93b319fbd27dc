import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { VmwuError } from './errors.js';
import { parseDuration, parseSize, parseSizeOrShare, type SizeOrShare } from './quantities.js';

/**
 * A store's `config.yaml`: the defaults a job gets when neither its flags nor its unit set memory,
 * CPUs, timeout or output cap, the node-local scratch directory, and whether fast start is on.
 */

export interface RunDefaults {
  memoryMiB: number;
  cpus: number;
  timeoutMs: number;
  maxOutputBytes: number;
}

export const builtinDefaults: RunDefaults = { memoryMiB: 256, cpus: 1, timeoutMs: 10 * 60_000, maxOutputBytes: 2 * 1024 ** 3 };

export interface StoreConfig {
  defaults: RunDefaults;
  /** `scratch:`: a node-local directory for instances and the blob cache (see src/run/node-dirs.ts). */
  scratch?: string;
  /** `fastStart:` false makes every job boot rather than restore from a template (src/run/fast-start/template.ts). */
  fastStart: boolean;
  /** `cache: {max: 20G}` (or 10%): the cap of this user's node cache (src/run/node-cache.ts); $VMWU_CACHE_MAX wins over it. */
  cacheMax?: SizeOrShare;
}

/**
 * `$VMWU_HOME/config.yaml`: run defaults over the built-in ones, and the node-local
 * scratch directory. The YAML and schema libraries load only when that file
 * exists: they cost `vmwu run` ~80 ms.
 */
export async function loadConfig(storeRoot: string): Promise<StoreConfig> {
  const file = join(storeRoot, 'config.yaml');
  if (!existsSync(file)) return { defaults: builtinDefaults, fastStart: true };
  const [{ LineCounter, parseDocument }, { z }] = await Promise.all([import('yaml'), import('zod')]);
  const ConfigSchema = z.strictObject({
    defaults: z.strictObject({
      memory: z.string().optional(),
      cpus: z.number().int().positive().optional(),
      timeout: z.string().optional(),
      maxOutput: z.string().optional(),
    }).optional(),
    scratch: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
    fastStart: z.boolean().optional(),
    cache: z.strictObject({ max: z.union([z.string(), z.number().positive()]).optional() }).optional(),
  });
  const lc = new LineCounter();
  const doc = parseDocument(readFileSync(file, 'utf8'), { lineCounter: lc });
  const at = (path: (string | number)[]) => {
    const node = doc.getIn(path, true) as { range?: [number, number] } | undefined;
    const pos = node?.range ? lc.linePos(node.range[0]) : undefined;
    return `${file}:${pos ? pos.line : 1}`;
  };
  if (doc.errors.length) throw new VmwuError('BAD_CONFIG', `${file}:${doc.errors[0]!.linePos?.[0].line ?? 1}: ${doc.errors[0]!.message}`);
  const parsed = ConfigSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path as (string | number)[];
    throw new VmwuError('BAD_CONFIG', `${at(path)}: ${path.join('.') || '(top)'}: ${issue.message}`, 'allowed: defaults: {memory, cpus, timeout, maxOutput}, scratch: /absolute/dir, fastStart: true|false, cache: {max: 20G or 10%}');
  }
  const d = parsed.data.defaults ?? {};
  return {
    defaults: {
      memoryMiB: d.memory ? Math.round(parseSize(d.memory, `${at(['defaults', 'memory'])}: defaults.memory`) / 1024 ** 2) : builtinDefaults.memoryMiB,
      cpus: d.cpus ?? builtinDefaults.cpus,
      timeoutMs: d.timeout ? parseDuration(d.timeout, `${at(['defaults', 'timeout'])}: defaults.timeout`) : builtinDefaults.timeoutMs,
      maxOutputBytes: d.maxOutput ? parseSize(d.maxOutput, `${at(['defaults', 'maxOutput'])}: defaults.maxOutput`) : builtinDefaults.maxOutputBytes,
    },
    ...(parsed.data.scratch ? { scratch: parsed.data.scratch } : {}),
    fastStart: parsed.data.fastStart ?? true,
    ...(parsed.data.cache?.max !== undefined ? { cacheMax: parseSizeOrShare(String(parsed.data.cache.max), `${at(['cache', 'max'])}: cache.max`) } : {}),
  };
}

export async function loadDefaults(storeRoot: string): Promise<RunDefaults> {
  return (await loadConfig(storeRoot)).defaults;
}
