import { VmwuError } from '../errors.js';
import { buildTinyBase } from '../base/tiny.js';
import { buildDebianBase } from '../base/debian.js';
import { importBase } from '../base/import.js';
import { pullImageBase } from '../base/pull.js';
import { registryOptions, type RegistryFlags } from './registry-flags.js';
import { ACCEPTED_FORMATS, type AcceptedFormat } from '../image/image-header.js';
import { findBasesByPlatform, listBases, requireBase, type Base } from '../store/bases.js';
import { formatBytes } from '../quantities.js';
import { withStore } from './context.js';
import { printJson, table } from './output.js';
import { stepProgress } from './progress.js';

/** The base commands (`vmwu base build`, `list`, `show`, `add`): a bootable guest OS made, listed, shown or imported into the store. */

export async function baseBuild(kind: string, o: { name?: string; suite?: string; mirror?: string; json?: boolean }): Promise<void> {
  if (kind !== 'tiny' && kind !== 'debian') throw new VmwuError('BAD_KIND', `unknown base kind "${kind}"`, 'available: tiny, debian');
  await withStore(async (store) => {
    const bar = stepProgress('base', Boolean(o.json));
    const started = Date.now();
    const build = kind === 'tiny' ? buildTinyBase : buildDebianBase;
    const base = await build(store, {
      name: o.name,
      suite: o.suite,
      mirror: o.mirror,
      progress: bar.progress,
    }).finally(() => bar.stop());
    if (o.json) printJson(base);
    else process.stdout.write(`built base ${base.name} ${base.digest.slice(0, 19)} (${formatBytes(base.size)}) in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
  });
}

export async function baseList(o: { json?: boolean; arch?: string; os?: string }): Promise<void> {
  await withStore(async (store) => {
    const bases = o.arch || o.os ? findBasesByPlatform(store.db, o.arch ?? 'x86_64', o.os ?? 'linux') : listBases(store.db);
    if (o.json) return printJson(bases);
    if (!bases.length) {
      process.stdout.write('no bases; build one with `vmwu base build tiny`\n');
      return;
    }
    process.stdout.write(table([
      ['NAME', 'ARCH', 'OS', 'BOOT', 'SIZE', 'DIGEST', 'CREATED'],
      ...bases.map((b: Base) => [b.name, b.arch, b.os, b.boot, formatBytes(b.size), b.digest.slice(7, 19), b.createdAt.slice(0, 19)]),
    ]));
  });
}

export async function baseShow(name: string, o: { json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const b = requireBase(store.db, name);
    if (o.json) return printJson(b);
    process.stdout.write(table(Object.entries(b).map(([k, v]) => [k, String(v)])));
  });
}

export async function baseAdd(image: string, o: { name: string; arch: string; os: string; boot: string; format?: string; kernel?: string; initrd?: string; cmdline?: string; apt?: boolean; json?: boolean }): Promise<void> {
  if (o.boot !== 'bios' && o.boot !== 'kernel') throw new VmwuError('BAD_VALUE', `--boot ${o.boot}: expected bios or kernel`);
  const format = o.format;
  if (format !== undefined && !(ACCEPTED_FORMATS as readonly string[]).includes(format)) {
    throw new VmwuError('BAD_VALUE', `--format ${format}: expected ${ACCEPTED_FORMATS.join(' or ')}`,
      'vmwu imports only raw and standalone qcow2 images; convert others yourself with qemu-img convert -O qcow2, if you trust them');
  }
  await withStore(async (store) => {
    const b = await importBase(store, image, { ...o, boot: o.boot as 'bios' | 'kernel', format: format as AcceptedFormat | undefined });
    if (o.json) printJson(b);
    else process.stdout.write(`added base ${b.name} ${b.digest.slice(0, 19)} (${b.boot} boot, ${formatBytes(b.size)})\n`);
  });
}

export async function basePull(ref: string, o: RegistryFlags & { name?: string; json?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const bar = stepProgress('pull', Boolean(o.json));
    const started = Date.now();
    const r = await pullImageBase(store, ref, { name: o.name, registry: registryOptions(o), progress: bar.progress }).finally(() => bar.stop());
    if (o.json) return printJson({ ...r.base, converted: r.converted, layerCount: r.layers.length });
    const p = r.base.image!.process;
    process.stdout.write(`pulled ${r.base.image!.ref} as base ${r.base.name} ${r.base.digest.slice(0, 19)}: ${r.layers.length} layer(s), ${r.converted} converted, `
      + `${formatBytes(r.base.size)}, in ${((Date.now() - started) / 1000).toFixed(1)}s\n`
      + `  entrypoint ${JSON.stringify(p.entrypoint)} cmd ${JSON.stringify(p.cmd)}${p.user ? ` user ${p.user}` : ''}${p.workingDir ? ` workdir ${p.workingDir}` : ''}`
      + `${r.base.image!.shell ? '' : ' (no shell)'}${r.base.packageManager ? ` packages: ${r.base.packageManager}` : ''}\n`);
  });
}
