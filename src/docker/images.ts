import { rmSync } from 'node:fs';
import { isUnitArtifact } from '../bundle/artifact.js';
import { pullUnit } from '../bundle/pull.js';
import { VmwuError } from '../errors.js';
import { pullImageBase } from '../base/pull.js';
import { parseImageRef } from '../oci/reference.js';
import { inspectRaw } from '../oci/skopeo.js';
import { putSetting } from '../store/db.js';
import { makeWorkDir } from '../store/temp-files.js';
import { findBase, listBases, type Base } from '../store/bases.js';
import type { Store } from '../store/store.js';
import { findUnit, listUnits, type UnitRecord } from '../unit/records.js';
import { dockerNameOfRef, parseDockerImage, type DockerImageName } from './image-name.js';
import { LOADED_NAME } from './load.js';

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

/** A vmwu unit pulled by its registry name (`docker pull HOST/lab/tool:1`) is found again by it: the name's setting names the unit. */
const UNIT_NAME = 'docker-name:';

/** Docker names kept in settings under `prefix` (pulled units, loaded bases), with what each names. */
function namesKept(store: Store, prefix: string): { repository: string; tag: string; target: string }[] {
  const rows = store.db.prepare('SELECT key, value FROM settings WHERE key LIKE ?').all(`${prefix}%`) as { key: string; value: string }[];
  return rows.flatMap((r) => {
    const named = dockerNameOfRef(r.key.slice(prefix.length));
    return named ? [{ ...named, target: r.value }] : [];
  });
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
  const units = listUnits(store.db);
  for (const u of units) {
    const base = bases.find((b) => b.digest === u.baseDigest);
    if (base) rows.push({ repository: `vmwu/${u.name}`, tag: u.version, id: u.digest, created: u.createdAt, size: base.size, target: { unit: `${u.name}:${u.version}` }, base, unit: u });
  }
  for (const p of namesKept(store, UNIT_NAME)) {
    const u = units.find((x) => `${x.name}:${x.version}` === p.target);
    const base = u && bases.find((b) => b.digest === u.baseDigest);
    if (u && base) rows.push({ repository: p.repository, tag: p.tag, id: u.digest, created: u.createdAt, size: base.size, target: { unit: p.target }, base, unit: u });
  }
  for (const p of namesKept(store, LOADED_NAME)) {
    const b = bases.find((x) => x.name === p.target);
    if (b) rows.push({ repository: p.repository, tag: p.tag, id: b.digest, created: b.createdAt, size: b.size, target: { base: b.name }, base: b });
  }
  return rows;
}

/** The row an image name (or full id) means among `rows`, as docker looks an image up. */
export function findDockerImage(rows: DockerImageRow[], name: string): DockerImageRow | undefined {
  let n: DockerImageName | undefined;
  try {
    n = parseDockerImage(name);
  } catch {
    n = undefined;
  }
  return rows.find((r) => r.id === name
    || (n?.kind === 'registry' && r.repository === n.repository && r.tag === n.tag)
    || (n?.kind === 'vmwu' && r.repository === `vmwu/${n.name}` && r.tag === (n.tag ?? 'latest')));
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
  const here = findDockerImage(listDockerImages(store), name);
  if (here && (here.base.image || here.unit)) return here.target;
  const pulled = listBases(store.db).find((b) => b.image?.ref === n.ref);
  if (pulled) return { base: pulled.name };
  if (!o.pull) throw new VmwuError('DOCKER_NO_IMAGE', `Error: No such image: ${name}`);
  // A unit `vmwu push` put in a registry runs as itself: its unit and base come with it
  // (each host's store pulls what it lacks, as docker pulls on each node).
  const work = makeWorkDir(store.paths, 'pull-');
  let unitArtifact: boolean;
  try {
    unitArtifact = isUnitArtifact(await inspectRaw(parseImageRef(n.ref), {}, work));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (unitArtifact) {
    const r = await pullUnit(store, n.ref);
    putSetting(store.db, `${UNIT_NAME}${n.ref}`, r.unit);
    return { unit: r.unit };
  }
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
