import { rm, writeFile, stat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import { packOverlay } from '../image/qemu-img.js';
import { runJob } from '../run/run.js';
import { type RunResult } from '../run/job-request.js';
import { ImageTools } from '../../guest/protocol.js';
import { DEFAULT_PATH, type GuestProcess } from '../run/command.js';
import { baseTop, findBasesByPlatform, listBases, requireBase, type Base, type ImageProcess } from '../store/bases.js';
import { pullImageBase } from '../base/pull.js';
import { formatImageRef, isImageRef, parseImageRef } from '../oci/reference.js';
import { digestString, hexOf, type Digest } from '../store/blobs.js';
import type { Store } from '../store/store.js';
import { buildKeyMaterial } from './unit-spec/build-key.js';
import { loadUnitSpec } from './unit-spec/load.js';
import type { UnitSpec } from './unit-spec/schema.js';
import { buildScript } from './build-script.js';
import { prunedAptLists } from './build-lists.js';
import { planBuild, type LayerPlan } from './build-plan.js';
import { deleteLayer, insertLayer, layerByKey, layerChain, packageLayers, unitByBuildKey, upsertUnit, type Layer, type UnitManifest, type UnitRecord } from './records.js';
import { treeDigest } from './tree-digest.js';
import { makeWorkDir } from '../store/temp-files.js';

/** Building a unit from its vmwu.yaml (`vmwu build`): its missing layers made in one boot, stored and registered, then the unit registered on them. */

export interface BuildOptions {
  tag?: string;
  /** Pull the spec's base image again even when a base from that reference is here. */
  pull?: boolean;
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

/**
 * The base a spec names: a base in the store, one for a platform, or a container
 * image, pulled on first use and then found by its reference (as `docker build`
 * uses a local image), or pulled again with `pull`.
 */
export async function resolveSpecBase(store: Store, spec: UnitSpec, o: { pull?: boolean; onStep?(step: string): void } = {}): Promise<Base> {
  const ref = spec.base;
  if (!('name' in ref) || !isImageRef(ref.name)) return resolveBaseRef(store, ref);
  const label = formatImageRef(parseImageRef(ref.name, `${spec.file}: base`, spec.dir));
  const have = o.pull ? undefined : listBases(store.db).find((b) => b.image?.ref === label);
  if (have) return have;
  o.onStep?.(`pulling ${label}`);
  return (await pullImageBase(store, label, { forBuild: true })).base;
}

export function resolveBaseRef(store: Store, ref: UnitSpec['base']): Base {
  if ('name' in ref) return requireBase(store.db, ref.name);
  const found = findBasesByPlatform(store.db, ref.arch, ref.os);
  if (!found.length) throw new VmwuError('NO_BASE', `no base for arch ${ref.arch} and OS ${ref.os}`, 'build one (vmwu base build debian) or import one (vmwu base add)');
  return found[0]!;
}

function parseTag(tag: string | undefined, spec: UnitSpec): { name: string; version: string } {
  if (!tag) return { name: spec.name, version: spec.version };
  const i = tag.lastIndexOf(':');
  return i > 0 ? { name: tag.slice(0, i), version: tag.slice(i + 1) } : { name: tag, version: spec.version };
}

/**
 * Boots `parent` (a base root or a layer) once with a fresh overlay, the network
 * on when a step installs packages, runs one build step, or two with a layer cut
 * between them (src/run/layer-cut.ts), and keeps each step's part of the overlay
 * as a content-addressed layer. Returns the layers bottom first. When the
 * second step fails, the first one's layer is registered all the same.
 */
async function buildLayers(store: Store, base: Base, parent: Digest, plans: [LayerPlan] | [LayerPlan, LayerPlan], spec: UnitSpec, opts: BuildOptions, runs: string[]): Promise<Layer[]> {
  const ctx = makeWorkDir(store.paths, 'build-');
  try {
    const inputs: { path: string; name: string }[] = [];
    for (const { step: planned, meta } of plans) {
      const lists = await prunedAptLists(store, base, planned.packages, ctx);
      if (lists) inputs.push({ path: lists.path, name: 'apt-lists' });
      const step = lists ? { ...planned, lists: { dir: 'apt-lists', stanzas: lists.stanzas } } : planned;
      await writeFile(join(ctx, `build-${meta.kind}.sh`), buildScript(step, base.packageManager ?? 'apt'));
      inputs.push({ path: join(ctx, `build-${meta.kind}.sh`), name: `build-${meta.kind}.sh` });
      if (step.setup) {
        await writeFile(join(ctx, 'setup.sh'), spec.setup ?? '');
        inputs.push({ path: join(ctx, 'setup.sh'), name: 'setup.sh' });
      }
      step.files.forEach((f, i) => inputs.push({ path: spec.files[i]!.from, name: f.input }));
    }
    const overlays = plans.map((_, i) => join(ctx, `layer-${i}.qcow2`));
    const [first, second] = plans;
    const sh = base.image ? `${ImageTools.dir}/bin/sh` : 'sh';
    const result: RunResult = await runJob(store, {
      base: base.digest, argv: [sh, `build-${first.meta.kind}.sh`], inputs, layers: layerChain(store.db, parent).map((l) => l.digest), keepRoot: overlays[0],
      ...(second ? { cut: { argv: [sh, `build-${second.meta.kind}.sh`], keep: overlays[1]! } } : {}),
      ...(base.image ? { process: buildProcess(base.image.process) } : {}),
      memoryMiB: 1024, cpus: 1, timeoutMs: 60 * 60_000, maxOutputBytes: 64 * 1024 ** 2, network: plans.some((l) => l.step.packages.length > 0),
      outDir: join(ctx, 'out'),
    }, {
      signal: opts.signal, onOutput: (_s, c) => opts.onLog?.(c),
      onEvent: (msg) => {
        if (msg.event === 'cut' && second) opts.onStep?.(stepLabel(second));
      },
    });
    runs.push(result.id);
    // What was kept is whole, also the package step's part after the app step failed: the next build starts from it.
    const kept = result.kept ?? [];
    const layers = await storeLayers(store, base, parent, plans.slice(0, kept.length), kept);
    if (result.status !== 'succeeded') throw await buildFailure(result, (result.cut ? second! : first).meta.kind, join(ctx, 'out'), layers);
    return layers;
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
}

/**
 * A build on a container image runs as root with the image's environment, and
 * vmwu's busybox after the image's own tools on PATH: a build can copy files and
 * run setup even in an image without a shell or coreutils.
 */
export function buildProcess(p: ImageProcess): GuestProcess {
  const path = p.env.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
  return { env: [...p.env.filter((e) => !e.startsWith('PATH=')), `PATH=${path}:${ImageTools.dir}/bin`], workingDir: '', user: '0' };
}

/** Rebases kept overlays onto their parents by digest, stores them, and registers them as layers, all or none. */
async function storeLayers(store: Store, base: Base, parent: Digest, plans: LayerPlan[], overlays: string[]): Promise<Layer[]> {
  const rows: Omit<Layer, 'createdAt'>[] = [];
  let below = parent;
  for (const [i, { meta }] of plans.entries()) {
    // A relative backing name resolves next to the layer, in the blob directory, in any store.
    const packed = `${overlays[i]!}.packed`;
    await packOverlay(overlays[i]!, store.blobs.path(below), hexOf(below), packed);
    const size = (await stat(packed)).size;
    const blob = await store.blobs.putFile(packed, { move: true });
    rows.push({ digest: blob.digest, parent: below, baseDigest: base.digest, kind: meta.kind, packages: meta.packages, key: meta.key, size });
    below = blob.digest;
  }
  return store.db.transaction(() => rows.map((r) => insertLayer(store.db, r)))();
}

/** The error of a build step that did not succeed, with the tail of its log. */
async function buildFailure(result: RunResult, kind: Layer['kind'], outDir: string, kept: Layer[]): Promise<VmwuError> {
  const err = result.error;
  const keptNote = kept.length ? `; the ${kept.map((l) => l.kind).join(' and ')} layer it built first was kept, and a build again starts from it` : '';
  // A full disk is the store's problem, not the spec's: say so, not "build failed".
  if (err?.code === 'NO_SPACE') return new VmwuError('NO_SPACE', `build step (${kind}): ${err.message}`, err.hint);
  // A cut that failed or was refused is the host's or the guest's doing, not the spec's.
  if (err?.code === 'LAYER_CUT' || err?.code === 'BAD_LAYER_CUT') return new VmwuError(err.code, `build step (${kind}): ${err.message}`, `${err.hint ?? ''} (vmwu logs ${result.id})`.trim());
  const log = await readFile(join(outDir, 'stdout'), 'utf8').catch(() => '') + await readFile(join(outDir, 'stderr'), 'utf8').catch(() => '');
  const tail = log.trim().split('\n').slice(-15).join('\n');
  return new VmwuError('BUILD_FAILED', `build step (${kind}) ${result.status}${result.exitCode !== null ? ` with exit ${result.exitCode}` : ''}${err ? `: ${err.message}` : ''}\n--- build log (tail) ---\n${tail}`,
    `full log: vmwu logs ${result.id}${keptNote}`);
}

function stepLabel(plan: LayerPlan, template?: Layer | null): string {
  if (plan.meta.kind === 'app') return 'files and setup';
  const pkgs = plan.step.packages.join(' ');
  return template ? `packages: ${pkgs} on template layer [${template.packages.join(' ')}]` : `packages: ${pkgs}`;
}

/**
 * `vmwu build`: spec → (cached) package layer, built on the best template → app
 * layer with files and setup → registered unit, in one boot. The unit is
 * registered only when every step succeeded; a package layer is kept as soon as
 * its step did.
 */
export async function buildUnit(store: Store, specPath: string, opts: BuildOptions = {}): Promise<BuildResult> {
  const started = performance.now();
  const spec = loadUnitSpec(specPath);
  const base = await resolveSpecBase(store, spec, opts);
  const { name, version } = parseTag(opts.tag, spec);
  const buildKey = digestString(JSON.stringify([buildKeyMaterial(spec), await treeDigest(spec.files.map((f) => f.from)), base.digest]));
  // The chain is derived from the top layer's parents, so it cannot disagree with them.
  const manifestFor = (top: Digest): UnitManifest => ({
    name, version, base: base.name, baseDigest: base.digest, top, chain: layerChain(store.db, top).map((l) => l.digest), run: spec.run, params: spec.params, outputs: spec.outputs,
    resources: spec.resources, network: spec.network, ...(spec.cpu.length ? { cpu: spec.cpu } : {}),
    ...(spec.data.length ? { data: spec.data } : {}), ...(spec.stdin ? { stdin: spec.stdin } : {}), buildKey, packages: spec.packages, createdAt: new Date().toISOString(),
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

  if (spec.packages.length && !base.packageManager) {
    if (base.image) {
      const found = base.image.otherPackageManager ? `it has ${base.image.otherPackageManager}, which vmwu does not drive` : 'it has no package manager vmwu knows';
      throw new VmwuError('NO_APT', `${spec.file}: image base ${base.name} (${base.image.ref}) has neither apt-get nor apk: ${found}`, 'install the packages in the image itself, or base the unit on a Debian, Ubuntu or Alpine image');
    }
    throw new VmwuError('NO_APT', `${spec.file}: base ${base.name} has no package manager, so packages cannot be installed`, 'use a Debian base (base: debian:bookworm), or import yours with `vmwu base add --apt`');
  }
  // A build killed between registering its layers and registering its unit left
  // exactly the app layer this spec makes (its blob was on the disk before its
  // row), on its package layer: finish that build.
  let app = spec.files.length || spec.setup ? layerByKey(store.db, buildKey) : undefined;
  if (app && !store.blobs.has(app.digest)) {
    deleteLayer(store.db, app.digest);
    app = undefined;
  }
  if (app) return { unit: register(manifestFor(app.digest)), cached: false, boots: 0, built: [], template: null, runs: [], ms: performance.now() - started };

  const plan = planBuild(spec, {
    baseRoot: baseTop(base), buildKey, packageKey: digestString(JSON.stringify({ base: base.digest, packages: spec.packages })), packageLayers: packageLayers(store.db, base.digest),
  });
  const runs: string[] = [];
  let built: Layer[] = [];
  if (plan.steps.length) {
    opts.onStep?.(stepLabel(plan.steps[0]!, plan.template));
    built = await buildLayers(store, base, plan.parent, plan.steps as [LayerPlan] | [LayerPlan, LayerPlan], spec, opts, runs);
  }
  const unit = register(manifestFor(built[built.length - 1]?.digest ?? plan.parent));
  return { unit, cached: false, boots: runs.length, built, template: plan.template, runs, ms: performance.now() - started };
}
