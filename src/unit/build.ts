import { rm, writeFile, stat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import { runTool } from '../image/tool.js';
import { runJob, type RunResult } from '../run/run.js';
import { findBasesByPlatform, requireBase, type Base } from '../store/bases.js';
import { digestString, hexOf, type Digest } from '../store/blobs.js';
import type { Store } from '../store/store.js';
import { buildKeyMaterial, loadUnitSpec, type UnitSpec } from './spec.js';
import { buildScript, type BuildStep } from './build-script.js';
import { deleteLayer, insertLayer, layerByKey, layerChain, packageLayers, unitByBuildKey, upsertUnit, type Layer, type UnitManifest, type UnitRecord } from './records.js';
import { treeDigest } from './tree-digest.js';
import { makeWorkDir } from '../store/temp-files.js';

export interface BuildOptions {
  tag?: string;
  onLog?(chunk: Buffer): void;
  onStep?(step: string): void;
  signal?: AbortSignal;
}

export interface BuildResult {
  unit: UnitRecord;
  cached: boolean;
  /** VMs booted by this build: 0 on a cache hit. */
  boots: number;
  /** Layers built now, and the template layer reused (VMM's idea), if any. */
  built: Layer[];
  template: Layer | null;
  /** Ids of the runs that built the layers, for `vmwu logs`. */
  runs: string[];
  ms: number;
}

export function resolveBaseRef(store: Store, ref: UnitSpec['base']): Base {
  if ('name' in ref) return requireBase(store.db, ref.name);
  const found = findBasesByPlatform(store.db, ref.arch, ref.os);
  if (!found.length) throw new VmwuError('NO_BASE', `no base for arch ${ref.arch} and OS ${ref.os}`, 'build one (vmwu base build debian) or import one (vmwu base add)');
  return found[0]!;
}

/** VMM's template rule: of the package layers on this base whose packages are all wanted, the one with the most. */
export function pickTemplate(layers: Layer[], wanted: string[]): Layer | null {
  const want = new Set(wanted);
  let best: Layer | null = null;
  for (const l of layers) {
    if (l.packages.length >= wanted.length || !l.packages.every((p) => want.has(p))) continue;
    if (!best || l.packages.length > best.packages.length) best = l;
  }
  return best;
}

function parseTag(tag: string | undefined, spec: UnitSpec): { name: string; version: string } {
  if (!tag) return { name: spec.name, version: spec.version };
  const i = tag.lastIndexOf(':');
  return i > 0 ? { name: tag.slice(0, i), version: tag.slice(i + 1) } : { name: tag, version: spec.version };
}

/**
 * Boots `parent` (a base root or a layer) with a fresh overlay, runs one build step
 * with the network on, and keeps the overlay as a new content-addressed layer.
 */
async function buildLayer(store: Store, base: Base, parent: Digest, step: BuildStep, meta: { kind: Layer['kind']; key: string; packages: string[] }, spec: UnitSpec, opts: BuildOptions, runs: string[]): Promise<Layer> {
  const ctx = makeWorkDir(store.paths, 'build-');
  try {
    await writeFile(join(ctx, 'build.sh'), buildScript(step));
    const inputs = [{ path: join(ctx, 'build.sh'), name: 'build.sh' }];
    if (step.setup) {
      await writeFile(join(ctx, 'setup.sh'), spec.setup ?? '');
      inputs.push({ path: join(ctx, 'setup.sh'), name: 'setup.sh' });
    }
    step.files.forEach((f, i) => inputs.push({ path: spec.files[i]!.from, name: f.input }));
    const overlay = join(ctx, 'layer.qcow2');
    const result: RunResult = await runJob(store, {
      base: base.digest, argv: ['sh', 'build.sh'], inputs, layers: layerChain(store.db, parent).map((l) => l.digest), keepRoot: overlay,
      memoryMiB: 1024, cpus: 1, timeoutMs: 60 * 60_000, maxOutputBytes: 64 * 1024 ** 2, network: step.packages.length > 0,
      outDir: join(ctx, 'out'),
    }, { signal: opts.signal, onOutput: (_s, c) => opts.onLog?.(c) });
    runs.push(result.id);
    if (result.status !== 'succeeded') {
      // A full disk is the store's problem, not the spec's: say so, not "build failed".
      if (result.error?.code === 'NO_SPACE') throw new VmwuError('NO_SPACE', `build step (${meta.kind}): ${result.error.message}`, result.error.hint);
      const log = await readFile(join(ctx, 'out', 'stdout'), 'utf8').catch(() => '') + await readFile(join(ctx, 'out', 'stderr'), 'utf8').catch(() => '');
      const tail = log.trim().split('\n').slice(-15).join('\n');
      throw new VmwuError('BUILD_FAILED', `build step (${meta.kind}) ${result.status}${result.exitCode !== null ? ` with exit ${result.exitCode}` : ''}${result.error ? `: ${result.error.message}` : ''}\n--- build log (tail) ---\n${tail}`,
        `full log: vmwu logs ${result.id}`);
    }
    // A relative backing name resolves next to the layer, in the blob directory, in any store.
    await runTool('qemu-img', ['rebase', '-u', '-f', 'qcow2', '-b', hexOf(parent), '-F', 'qcow2', overlay]);
    const size = (await stat(overlay)).size;
    const blob = await store.blobs.putFile(overlay, { move: true });
    return insertLayer(store.db, { digest: blob.digest, parent, baseDigest: base.digest, kind: meta.kind, packages: meta.packages, key: meta.key, size });
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
}

/**
 * `vmwu build`: spec → (cached) package layer, built on the best template → app
 * layer with files and setup → registered unit. Nothing is registered unless every
 * step succeeded.
 */
export async function buildUnit(store: Store, specPath: string, opts: BuildOptions = {}): Promise<BuildResult> {
  const started = performance.now();
  const spec = loadUnitSpec(specPath);
  const base = resolveBaseRef(store, spec.base);
  const { name, version } = parseTag(opts.tag, spec);
  const buildKey = digestString(JSON.stringify([buildKeyMaterial(spec), await treeDigest(spec.files.map((f) => f.from)), base.digest]));
  // The chain is derived from the top layer's parents, so it cannot disagree with them.
  const manifestFor = (top: Digest): UnitManifest => ({
    name, version, base: base.name, baseDigest: base.digest, top, chain: layerChain(store.db, top).map((l) => l.digest), run: spec.run, params: spec.params, outputs: spec.outputs,
    resources: spec.resources, network: spec.network, buildKey, packages: spec.packages, createdAt: new Date().toISOString(),
  });
  const register = (m: UnitManifest): UnitRecord => {
    const digest = digestString(JSON.stringify({ ...m, createdAt: undefined, name: undefined, version: undefined }));
    upsertUnit(store.db, digest, m);
    return { ...m, digest };
  };

  const hit = unitByBuildKey(store.db, buildKey);
  if (hit) {
    const unit = register(manifestFor(hit.top));
    return { unit, cached: true, boots: 0, built: [], template: null, runs: [], ms: performance.now() - started };
  }

  if (spec.packages.length && base.packageManager !== 'apt') {
    throw new VmwuError('NO_APT', `${spec.file}: base ${base.name} has no package manager, so packages cannot be installed`, 'use a Debian base (base: debian:bookworm), or import yours with `vmwu base add --apt`');
  }
  const built: Layer[] = [];
  const runs: string[] = [];
  let template: Layer | null = null;
  let top: Digest = base.root;
  if (spec.packages.length) {
    const key = digestString(JSON.stringify({ base: base.digest, packages: spec.packages }));
    let layer = layerByKey(store.db, key);
    if (!layer) {
      template = pickTemplate(packageLayers(store.db, base.digest), spec.packages);
      const have = new Set(template?.packages ?? []);
      const diff = spec.packages.filter((p) => !have.has(p));
      opts.onStep?.(template ? `packages: ${diff.join(' ')} on template layer [${template.packages.join(' ')}]` : `packages: ${diff.join(' ')}`);
      layer = await buildLayer(store, base, template?.digest ?? base.root, { packages: diff, files: [], setup: null }, { kind: 'packages', key, packages: spec.packages }, spec, opts, runs);
      built.push(layer);
    }
    top = layer.digest;
  }
  if (spec.files.length || spec.setup) {
    // A build killed between registering this layer and registering its unit left
    // exactly the layer this spec makes (its blob was on the disk before its row): finish that build.
    let layer = layerByKey(store.db, buildKey);
    if (layer && !store.blobs.has(layer.digest)) {
      deleteLayer(store.db, layer.digest);
      layer = undefined;
    }
    if (!layer) {
      opts.onStep?.('files and setup');
      const step: BuildStep = { packages: [], files: spec.files.map((f, i) => ({ input: `file${i}`, to: f.to })), setup: spec.setup ? 'setup.sh' : null };
      layer = await buildLayer(store, base, top, step, { kind: 'app', key: buildKey, packages: spec.packages }, spec, opts, runs);
      built.push(layer);
    }
    top = layer.digest;
  }
  const unit = register(manifestFor(top));
  return { unit, cached: false, boots: runs.length, built, template, runs, ms: performance.now() - started };
}
