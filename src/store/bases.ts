import { VmwuError } from '../errors.js';
import type { Db } from './db.js';
import type { Digest } from './blobs.js';

/** The store's records of bases (GVA's "VM disk database"): registered, listed, found by name, digest or platform, and removed. */

/** A registered base: GVA's "VM disk database" row, content-addressed. */
export interface Base {
  name: string;
  digest: Digest;
  arch: string;
  os: string;
  description: string;
  boot: 'kernel' | 'bios';
  kernel: Digest | null;
  initrd: Digest | null;
  root: Digest;
  cmdline: string;
  size: number;
  virtualSize: number;
  /** The package manager builds may use to install `packages` (null: none, e.g. busybox). */
  packageManager: PackageManager | null;
  /** For a base pulled from a container image: the image. */
  image: ImageBase | null;
  createdAt: string;
}

export type PackageManager = 'apt' | 'apk';

/** The process a container image's config describes (the `docker run` contract). */
export interface ImageProcess {
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workingDir: string;
  user: string;
}

/** What a base pulled from a container image (`vmwu base pull`) keeps of it. */
export interface ImageBase {
  /** The reference it was pulled by. */
  ref: string;
  /** The image manifest's digest: the image, whatever its tag points at later. */
  manifest: string;
  process: ImageProcess;
  /** The image's layers above the root (the first layer), top first: what a job boots. */
  layers: Digest[];
  /** Whether the image has /bin/sh (`vmwu shell`, `setup:` and `packages:` need one). */
  shell: boolean;
  /** A package manager the image has that vmwu does not drive (dnf, pacman …), for the error a build gives. */
  otherPackageManager?: string;
}

interface BaseRow {
  name: string; digest: string; arch: string; os: string; description: string; boot: string;
  kernel: string | null; initrd: string | null; root: string; cmdline: string;
  size: number; virtual_size: number; package_manager: string | null; image: string | null; created_at: string;
}

function fromRow(r: BaseRow): Base {
  return {
    name: r.name, digest: r.digest as Digest, arch: r.arch, os: r.os, description: r.description,
    boot: r.boot as Base['boot'], kernel: r.kernel as Digest | null, initrd: r.initrd as Digest | null,
    root: r.root as Digest, cmdline: r.cmdline, size: r.size, virtualSize: r.virtual_size,
    packageManager: r.package_manager === 'apt' || r.package_manager === 'apk' ? r.package_manager : null,
    image: r.image ? JSON.parse(r.image) as ImageBase : null, createdAt: r.created_at,
  };
}

/** Registers (or replaces, when rebuilt under the same name) a base in one statement. */
export function registerBase(db: Db, input: Omit<Base, 'createdAt' | 'packageManager' | 'image'> & { packageManager?: Base['packageManager']; image?: ImageBase | null }): Base {
  const b = { ...input, packageManager: input.packageManager ?? null, image: input.image ?? null };
  const createdAt = new Date().toISOString();
  const manifest = JSON.stringify({ ...b, createdAt });
  db.prepare(`INSERT INTO bases (name, digest, arch, os, description, boot, kernel, initrd, root, cmdline, size, virtual_size, package_manager, image, manifest, created_at)
      VALUES (@name, @digest, @arch, @os, @description, @boot, @kernel, @initrd, @root, @cmdline, @size, @virtualSize, @packageManager, @imageJson, @manifest, @createdAt)
      ON CONFLICT (name) DO UPDATE SET digest = excluded.digest, arch = excluded.arch, os = excluded.os,
        description = excluded.description, boot = excluded.boot, kernel = excluded.kernel, initrd = excluded.initrd,
        root = excluded.root, cmdline = excluded.cmdline, size = excluded.size, virtual_size = excluded.virtual_size,
        package_manager = excluded.package_manager, image = excluded.image,
        manifest = excluded.manifest, created_at = excluded.created_at`)
    .run({ ...b, imageJson: b.image ? JSON.stringify(b.image) : null, manifest, createdAt });
  return { ...b, createdAt };
}

export function listBases(db: Db): Base[] {
  return (db.prepare('SELECT * FROM bases ORDER BY name').all() as BaseRow[]).map(fromRow);
}

export function findBase(db: Db, name: string): Base | undefined {
  const r = db.prepare('SELECT * FROM bases WHERE name = ? OR digest = ?').get(name, name) as BaseRow | undefined;
  return r && fromRow(r);
}

/** GVA's base lookup by exact architecture and OS; the newest match wins. */
export function findBasesByPlatform(db: Db, arch: string, os: string): Base[] {
  return (db.prepare('SELECT * FROM bases WHERE arch = ? AND os = ? ORDER BY created_at DESC')
    .all(arch, os) as BaseRow[]).map(fromRow);
}

export function requireBase(db: Db, ref: string): Base {
  const b = findBase(db, ref);
  if (b) return b;
  const names = listBases(db).map((x) => x.name);
  throw new VmwuError('NO_BASE', `no base named "${ref}" in the store`,
    names.length ? `known bases: ${names.join(', ')}` : 'build one with `vmwu base build tiny`');
}

export function removeBase(db: Db, name: string): boolean {
  return db.prepare('DELETE FROM bases WHERE name = ?').run(name).changes > 0;
}

/** The top of what a base boots: its image's top layer, else its root. */
export function baseTop(b: Base): Digest {
  return b.image?.layers[0] ?? b.root;
}
