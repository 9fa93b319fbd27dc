import { readFileSync } from 'node:fs';
import { runTool } from '../image/tool.js';
import type { VerdictCache } from './accel.js';
import { normalizeCpuFeature } from './cpu.js';
import { qemuBinary, qemuIdentity } from './host.js';
import type { Accel } from './spec.js';

/** The CPU features this host's guests get, so that a job whose unit needs others is refused before it boots and a pool host can report them. */

/**
 * The CPU features this host's guests get (src/vm/cpu.ts picks the model).
 * Under TCG: what QEMU's `max` model expands to, asked of a QEMU with no machine
 * over QMP (about 50 ms, remembered per QEMU build). Under KVM: the host's own
 * flags, which `-cpu host` passes on.
 */
export async function offeredCpuFeatures(accel: Accel, cache?: VerdictCache): Promise<string[]> {
  if (accel === 'kvm') return hostFlags();
  const key = `cpu-features:tcg:${qemuIdentity()}`;
  const known = cache?.get(key);
  if (known) return JSON.parse(known) as string[];
  const qmp = [
    { execute: 'qmp_capabilities' },
    { execute: 'query-cpu-model-expansion', arguments: { type: 'full', model: { name: 'max' } } },
    { execute: 'quit' },
  ].map((c) => JSON.stringify(c)).join('\n') + '\n';
  const { stdout } = await runTool(qemuBinary, ['-machine', 'none', '-accel', 'tcg', '-nodefaults', '-display', 'none', '-qmp', 'stdio'], { input: qmp, hint: 'install qemu-system-x86' });
  const features = new Set<string>();
  for (const line of stdout.split('\n')) {
    let reply: { return?: { model?: { props?: Record<string, unknown> } } };
    try {
      reply = JSON.parse(line) as typeof reply;
    } catch {
      continue;
    }
    for (const [k, v] of Object.entries(reply.return?.model?.props ?? {})) if (v === true) features.add(normalizeCpuFeature(k));
  }
  const list = [...features].sort();
  if (list.length) cache?.put(key, JSON.stringify(list));
  return list;
}

function hostFlags(): string[] {
  const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
  return [...new Set((line?.split(':')[1] ?? '').trim().split(/\s+/).filter(Boolean).map(normalizeCpuFeature))].sort();
}
