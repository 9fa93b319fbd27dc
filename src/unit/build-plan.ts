import { basename } from 'node:path';
import type { Digest } from '../store/blobs.js';
import type { BuildStep } from './build-script.js';
import type { Layer } from './records.js';
import type { UnitSpec } from './unit-spec/schema.js';

/** What a unit's build makes in its one boot, decided without I/O: the package layer unless it is cached (built on the best template), then the app layer. */

/** One build step and the layer it makes. */
export interface LayerPlan {
  step: BuildStep;
  meta: { kind: Layer['kind']; key: string; packages: string[] };
}

/** What one build boot makes, on which image. */
export interface BuildPlan {
  /** The image the boot's overlay sits on: the base root, the cached package layer or a template layer. */
  parent: Digest;
  /** The package layer built on, when it is a template (fewer packages than wanted). */
  template: Layer | null;
  /** Bottom first: the package step, the app step, or both (cut apart in the same boot). */
  steps: LayerPlan[];
}

/** VMM's template rule: of the package layers on this base whose packages are all wanted, the one with the most. Pure. */
export function pickTemplate(layers: Layer[], wanted: string[]): Layer | null {
  const want = new Set(wanted);
  let best: Layer | null = null;
  for (const l of layers) {
    if (l.packages.length >= wanted.length || !l.packages.every((p) => want.has(p))) continue;
    if (!best || l.packages.length > best.packages.length) best = l;
  }
  return best;
}

/**
 * What a build whose app layer is not there yet makes in its one boot: the
 * package layer (keyed by base and packages, so other specs reuse it) unless it
 * is cached, built on the best template, installing only the difference; then
 * the files and setup. `packageLayers` are the base's. Pure.
 */
export function planBuild(spec: Pick<UnitSpec, 'packages' | 'files' | 'setup'>,
  o: { baseRoot: Digest; buildKey: string; packageKey: string; packageLayers: Layer[] }): BuildPlan {
  const plan: BuildPlan = { parent: o.baseRoot, template: null, steps: [] };
  if (spec.packages.length) {
    const cached = o.packageLayers.find((l) => l.key === o.packageKey);
    if (cached) {
      plan.parent = cached.digest;
    } else {
      plan.template = pickTemplate(o.packageLayers, spec.packages);
      const have = new Set(plan.template?.packages ?? []);
      plan.parent = plan.template?.digest ?? o.baseRoot;
      plan.steps.push({ step: { packages: spec.packages.filter((p) => !have.has(p)), files: [], setup: null }, meta: { kind: 'packages', key: o.packageKey, packages: spec.packages } });
    }
  }
  if (spec.files.length || spec.setup) {
    plan.steps.push({
      step: { packages: [], files: spec.files.map((f, i) => ({ input: `file${i}`, to: f.to, name: basename(f.from) })), setup: spec.setup ? 'setup.sh' : null },
      meta: { kind: 'app', key: o.buildKey, packages: spec.packages },
    });
  }
  return plan;
}
