import { VmwuError } from '../errors.js';
import { pullImageBase } from '../base/pull.js';
import { findBase, listBases, type Base } from '../store/bases.js';
import type { Store } from '../store/store.js';
import { findUnit, listUnits, type UnitRecord } from '../unit/records.js';
import { dockerNameOfRef, parseDockerImage } from './image-name.js';

/**
 * What `docker images`, `docker image inspect` and `docker pull` see of a store:
 * bases pulled from registries under their docker names, and vmwu's own units and
 * bases as `vmwu/NAME:VERSION`.
 */

export interface DockerImageRow {
  repository: string;
  tag: string;
  id: string;
  created: string;
  size: number;
  target: { unit?: string; base?: string };
  base: Base;
  unit?: UnitRecord;
}

export function listDockerImages(store: Store): DockerImageRow[] {
  const rows: DockerImageRow[] = [];
  const bases = listBases(store.db);
  for (const b of bases) {
    const named = b.image ? dockerNameOfRef(b.image.ref) : null;
    if (named) rows.push({ ...named, id: b.digest, created: b.createdAt, size: b.size, target: { base: b.name }, base: b });
    const i = b.name.lastIndexOf(':');
    rows.push({ repository: `vmwu/${i > 0 ? b.name.slice(0, i) : b.name}`, tag: i > 0 ? b.name.slice(i + 1) : 'latest', id: b.digest, created: b.createdAt, size: b.size, target: { base: b.name }, base: b });
  }
  for (const u of listUnits(store.db)) {
    const base = bases.find((b) => b.digest === u.baseDigest);
    if (base) rows.push({ repository: `vmwu/${u.name}`, tag: u.version, id: u.digest, created: u.createdAt, size: base.size, target: { unit: `${u.name}:${u.version}` }, base, unit: u });
  }
  return rows;
}

/** The unit or base an image name means here; a registry image not here yet is pulled when `pull`. */
export async function resolveDockerImage(store: Store, name: string, o: { pull: boolean }): Promise<{ unit?: string; base?: string }> {
  const n = parseDockerImage(name);
  if (n.kind === 'vmwu') {
    const ref = n.tag ? `${n.name}:${n.tag}` : n.name;
    if (findUnit(store.db, ref)) return { unit: ref };
    if (findBase(store.db, ref)) return { base: ref };
    throw new VmwuError('DOCKER_NO_IMAGE', `Unable to find image '${name}' locally: no vmwu unit or base ${ref}`, 'build the unit (vmwu build) or the base (vmwu base build) first');
  }
  const here = listDockerImages(store).find((r) => r.repository === n.repository && r.tag === n.tag && r.base.image);
  if (here) return here.target;
  const pulled = listBases(store.db).find((b) => b.image?.ref === n.ref);
  if (pulled) return { base: pulled.name };
  if (!o.pull) throw new VmwuError('DOCKER_NO_IMAGE', `Error: No such image: ${name}`);
  const { base } = await pullImageBase(store, n.ref, { forBuild: true, name: `${n.repository.split('/').pop()}:${n.tag}` });
  return { base: base.name };
}

/** `docker image inspect`'s document for an image here, with the fields engines read. */
export function inspectDockerImage(row: DockerImageRow): Record<string, unknown> {
  const p = row.base.image?.process;
  return {
    Id: row.id,
    RepoTags: [`${row.repository}:${row.tag}`],
    Created: row.created,
    Size: row.size,
    Architecture: 'amd64',
    Os: 'linux',
    Config: {
      Env: p?.env ?? [],
      Cmd: row.unit ? row.unit.run : p?.cmd ?? null,
      Entrypoint: row.unit ? null : p?.entrypoint.length ? p.entrypoint : null,
      WorkingDir: p?.workingDir ?? '',
      User: p?.user ?? '',
    },
  };
}
