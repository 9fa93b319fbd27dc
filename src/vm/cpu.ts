import { VmwuError } from '../errors.js';
import type { Accel } from './spec.js';

/**
 * The guest's CPU model, chosen on purpose (pure). QEMU's default (`qemu64`)
 * hides SSE4.1/4.2, POPCNT, AVX, AVX2, FMA and RDTSCP, which compiled science
 * codes are built for (Debian's gromacs depends on sse4.2-support). So guests
 * get everything the accelerator can give: under TCG `max` (every feature QEMU
 * emulates), under KVM `host`. A unit states what it needs (`cpu:` in vmwu.yaml:
 * x86-64 levels and/or feature names); a host that cannot offer it is refused
 * before anything boots, or skipped by placement.
 */

/** What QEMU gives a guest when no -cpu is passed: the model of a checkpoint recorded before vmwu chose one. */
export const QEMU_DEFAULT_CPU = 'qemu64';

export function guestCpuModel(accel: Accel): string {
  return accel === 'kvm' ? 'host' : 'max';
}

/** The x86-64 micro-architecture levels (psABI), as QEMU names their features. */
export const CPU_LEVELS: Record<string, string[]> = {
  'x86-64': ['cx8', 'cmov', 'fpu', 'fxsr', 'mmx', 'sse', 'sse2'],
  'x86-64-v2': ['cx16', 'lahf-lm', 'popcnt', 'sse3', 'sse4-1', 'sse4-2', 'ssse3'],
  'x86-64-v3': ['avx', 'avx2', 'bmi1', 'bmi2', 'f16c', 'fma', 'abm', 'movbe', 'xsave'],
  'x86-64-v4': ['avx512f', 'avx512bw', 'avx512cd', 'avx512dq', 'avx512vl'],
};
const LEVEL_ORDER = ['x86-64', 'x86-64-v2', 'x86-64-v3', 'x86-64-v4'];

/** One spelling per feature: QEMU says `sse4.2` or `lahf_lm`, Linux `sse4_2`, `lahf_lm`; `pni` is SSE3 and `lzcnt` comes with `abm` in both. */
export function normalizeCpuFeature(name: string): string {
  const n = name.trim().toLowerCase().replace(/[._]/g, '-');
  return n === 'pni' ? 'sse3' : n === 'lzcnt' ? 'abm' : n;
}

/** A CPU feature name as normalizeCpuFeature spells it: also what hosts and task files may carry. */
export const CPU_FEATURE = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** `cpu:` items (levels and feature names) → the features they need, normalized and sorted. `where` names the file and field in errors. */
export function cpuNeeds(items: string[], where: string): string[] {
  const out = new Set<string>();
  for (const raw of items) {
    const item = raw.trim().toLowerCase();
    const level = LEVEL_ORDER.indexOf(item);
    if (level >= 0) {
      for (const l of LEVEL_ORDER.slice(0, level + 1)) for (const f of CPU_LEVELS[l]!) out.add(f);
      continue;
    }
    const f = normalizeCpuFeature(item);
    if (!CPU_FEATURE.test(f)) throw new VmwuError('BAD_CPU', `${where}: ${JSON.stringify(raw)} is neither an x86-64 level nor a CPU feature name`, `levels: ${LEVEL_ORDER.join(', ')}; features as in /proc/cpuinfo (avx2, rdtscp, sse4_2)`);
    out.add(f);
  }
  return [...out].sort();
}

/** What of `needs` a host's offered features lack. */
export function missingCpuFeatures(needs: string[], offered: Iterable<string>): string[] {
  const have = new Set([...offered].map(normalizeCpuFeature));
  return needs.filter((f) => !have.has(f));
}
