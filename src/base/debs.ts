import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';
import { runTool } from '../image/tool.js';
import { renameDurable } from '../store/durable.js';

/**
 * Debian packages fetched without root for building bases: a meta-package resolved by apt-cache, a
 * .deb downloaded once into the store's cache and unpacked with dpkg -x.
 */

const aptHint = 'as root run `apt-get update` once (scripts/setup.sh does it), so apt knows the Debian package lists';

/** Resolves a Debian meta-package (e.g. linux-image-cloud-amd64) to the concrete package it depends on. */
export async function resolveMetaPackage(meta: string, prefix: string): Promise<string> {
  const { stdout } = await runTool('apt-cache', ['depends', meta], { hint: aptHint });
  const m = stdout.split('\n').map((l) => l.trim()).find((l) => l.startsWith(`Depends: ${prefix}`));
  if (!m) throw new VmwuError('NO_PACKAGE', `apt does not know a package that ${meta} depends on`, aptHint);
  return m.slice('Depends: '.length).trim();
}

/**
 * Downloads a .deb into the cache without root (`apt-get download`) and unpacks it
 * with `dpkg -x`; both are rootless, which is what lets bases be built by any user.
 * The download lands in a directory of its own and only a complete .deb is moved
 * into the cache, so a killed download never leaves a cached package that is short.
 */
export async function fetchAndExtractDeb(pkg: string, cacheDir: string, dest: string): Promise<string> {
  mkdirSync(cacheDir, { recursive: true });
  let deb = findDeb(cacheDir, pkg);
  if (!deb) {
    const dl = mkdtempSync(join(cacheDir, '.download-'));
    try {
      await runTool('apt-get', ['download', '-q', pkg], { cwd: dl, hint: aptHint });
      const got = findDeb(dl, pkg);
      if (!got) throw new VmwuError('NO_PACKAGE', `apt-get download ${pkg} produced no .deb`, aptHint);
      deb = join(cacheDir, got.slice(dl.length + 1));
      await renameDurable(got, deb);
    } finally {
      rmSync(dl, { recursive: true, force: true });
    }
  }
  mkdirSync(dest, { recursive: true });
  await runTool('dpkg', ['-x', deb, dest]);
  return deb;
}

function findDeb(dir: string, pkg: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const f = readdirSync(dir).find((n) => n.startsWith(`${pkg}_`) && n.endsWith('.deb'));
  return f && join(dir, f);
}
