import { join } from 'node:path';
import { formatBytes } from '../quantities.js';
import { withStore } from './context.js';
import { printJson } from './output.js';
import { escapeForTerminal } from './terminal-text.js';
import type { StaleTemplate } from '../run/fast-start/template.js';
import type { CacheEntry } from '../run/cache-cap.js';
import type { Store } from '../store/store.js';

/**
 * Freeing the store's disk from the command line: `vmwu gc` (unused layers and blobs, leftovers, old
 * checkpoints, vmwu-docker's stale volume images, this host's stale templates) and `vmwu base rm`.
 */

export async function gc(o: { dryRun?: boolean; json?: boolean; cache?: boolean }): Promise<void> {
  const [{ pruneCheckpoints, runGc }, { pruneVolumeImages }, { pruneAptLists }] = await Promise.all([import('../upkeep/gc.js'), import('../docker/volume-images.js'), import('../base/apt-lists.js')]);
  await withStore(async (store) => {
    const checkpoints = pruneCheckpoints(store, { dryRun: o.dryRun });
    // Forgotten first, so this gc removes their images' blobs.
    const volumes = pruneVolumeImages(store.db, { dryRun: o.dryRun });
    const r = runGc(store, { dryRun: o.dryRun });
    const aptLists = pruneAptLists(store, { dryRun: o.dryRun });
    const { templates, cache, trimmed } = await pruneHostCache(store, Boolean(o.dryRun), Boolean(o.cache));
    if (o.json) return printJson({ ...r, checkpoints, templates, volumeImages: volumes, aptLists, ...(cache ? { cache } : {}) });
    const verb = r.dryRun ? 'would remove' : 'removed';
    if (r.dryRun) {
      for (const l of r.layers) process.stdout.write(`layer ${l.digest} (${l.kind})\n`);
      for (const b of r.blobs) process.stdout.write(`blob  ${b.digest} ${formatBytes(b.bytes)}\n`);
      for (const t of r.tmpFiles) process.stdout.write(`temp  ${escapeForTerminal(t.name)} ${formatBytes(t.bytes)}\n`);
      for (const w of r.workDirs) process.stdout.write(`work  ${escapeForTerminal(w.name)} ${formatBytes(w.bytes)}\n`);
    }
    const blobBytes = r.blobs.reduce((n, b) => n + b.bytes, 0);
    const tmpBytes = [...r.tmpFiles, ...r.workDirs].reduce((n, t) => n + t.bytes, 0);
    process.stdout.write(`${verb} ${r.layers.length} layer(s), ${r.blobs.length} blob(s) (${formatBytes(blobBytes)}) and `
      + `${r.tmpFiles.length + r.workDirs.length} stale temp file(s) (${formatBytes(tmpBytes)})${r.dryRun ? '' : `: freed ${formatBytes(r.freedBytes)}`}\n`);
    if (checkpoints.length) {
      for (const c of checkpoints) process.stdout.write(`checkpoint ${c.id} ${formatBytes(c.bytes)}: ${c.why}\n`);
      process.stdout.write(`${verb} ${checkpoints.length} checkpoint(s) (${formatBytes(checkpoints.reduce((n, c) => n + c.bytes, 0))})\n`);
    }
    for (const l of aptLists) process.stdout.write(`package lists of a removed base (${l.name.slice(0, 12)}) ${formatBytes(l.bytes)}\n`);
    for (const v of volumes) process.stdout.write(`volume image of ${escapeForTerminal(v.source)} ${formatBytes(v.bytes)}: ${v.why}\n`);
    if (templates.length) {
      for (const t of templates) process.stdout.write(`template ${t.key} ${formatBytes(t.bytes)}: ${t.why}\n`);
      process.stdout.write(`${verb} ${templates.length} template(s) of this host (${formatBytes(templates.reduce((n, t) => n + t.bytes, 0))})\n`);
    }
    if (cache) {
      const bytes = cache.removed.reduce((n, e) => n + e.bytes, 0) + cache.leftoverBytes;
      process.stdout.write(`${verb} ${cache.removed.length} entr${cache.removed.length === 1 ? 'y' : 'ies'} of this host's node cache ${escapeForTerminal(cache.dir)} (${formatBytes(bytes)})`
        + `${cache.inUse.length ? `; kept ${cache.inUse.length} in use by running jobs (${formatBytes(cache.inUse.reduce((n, e) => n + e.bytes, 0))})` : ''}\n`);
    } else if (trimmed) {
      process.stdout.write(`node cache over its cap: ${trimmed}\n`);
    }
    if (r.busy.length) {
      process.stderr.write(`vmwu: a build, base build or import is working in ${r.busy.join(', ')}: no layer or blob was touched\n`
        + '  hint: run gc again when it has finished; a directory whose process died is removed by the next gc\n');
    }
    if (r.recent) process.stderr.write(`vmwu: kept ${r.recent} unused layer(s)/blob(s) made in the last few seconds, in case a build is about to register them\n`);
    for (const f of r.failed) process.stderr.write(`vmwu: could not remove ${escapeForTerminal(`${f.name}: ${f.error}`)}\n`);
  });
}

/**
 * This host's node cache (src/run/node-cache.ts): its templates that can no
 * longer be used or have not been for long, then its least recently used
 * entries past its cap; with `empty` (`--cache`), every entry no running job
 * holds. Entries live processes hold are never touched.
 */
async function pruneHostCache(store: Store, dryRun: boolean, empty: boolean): Promise<{ templates: StaleTemplate[]; cache?: { dir: string; removed: CacheEntry[]; inUse: CacheEntry[]; leftoverBytes: number }; trimmed?: string }> {
  const [{ loadConfig }, { openNodeDirs }, { pruneTemplates }, { qemuIdentity }, { NodeCache, cacheMaxSetting }] = await Promise.all([
    import('../config.js'), import('../run/node-dirs.js'), import('../run/fast-start/template.js'), import('../vm/host.js'), import('../run/node-cache.js'),
  ]);
  const dirs = openNodeDirs((await loadConfig(store.paths.root)).scratch, store.paths.root);
  const cache = NodeCache.at(dirs.cache);
  const templates = await cache.locked(() => pruneTemplates(join(dirs.cache, 'templates'), {
    store: store.paths.root, hasBlob: (hex) => store.blobs.has(`sha256:${hex}`), qemu: qemuIdentity(), dryRun, held: cache.readHolds().names,
  }));
  // What a vmwu that died left beside its instances, and its jobs' RAM files (src/run/owned-dirs.ts).
  if (!dryRun) {
    const { reapOwnedDirs } = await import('../run/owned-dirs.js');
    reapOwnedDirs(dirs.instances);
    reapOwnedDirs((await import('../run/own-memory.js')).ownMemoryRoot());
  }
  if (empty) return { templates, cache: { dir: dirs.cache, ...(await cache.empty({ dryRun })) } };
  await cache.tidy({ dryRun });
  const trimmed = dryRun ? undefined : await cache.makeRoom(undefined, 0, await cacheMaxSetting(store.paths.root));
  return { templates, ...(trimmed ? { trimmed } : {}) };
}

export async function baseRm(name: string, o: { json?: boolean }): Promise<void> {
  const { removeUnusedBase } = await import('../upkeep/gc.js');
  await withStore(async (store) => {
    const b = removeUnusedBase(store, name);
    if (o.json) return printJson({ removed: b.name, digest: b.digest, blobsLeftForGc: [b.kernel, b.initrd, b.root].filter(Boolean) });
    process.stdout.write(`removed base ${b.name} (${b.digest.slice(0, 19)}); its kernel, initrd and root blobs stay until \`vmwu gc\`\n`);
  });
}
