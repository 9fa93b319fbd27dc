import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract } from 'tar-stream';
import { pullImageBase } from '../base/pull.js';
import { VmwuError } from '../errors.js';
import { putSetting } from '../store/db.js';
import type { Store } from '../store/store.js';
import { parseDockerImage } from './image-name.js';

/**
 * `docker load`: a docker-archive (what `docker save` and `podman save` write) made
 * into a base by the image pull (skopeo's docker-archive transport, then vmwu's layer
 * conversion), and found again by the names the archive gives it (its RepoTags).
 */

/** A loaded base is found by each docker name its archive gave it: the name's setting names the base. */
export const LOADED_NAME = 'docker-base-name:';

/** manifest.json is a few hundred bytes per image; more than this is not an archive docker wrote. */
const MANIFEST_CAP = 1024 * 1024;

interface ArchiveEntry { Config?: string; RepoTags?: string[] | null }

/** The archive's manifest.json: one entry per image it holds. */
export async function readArchiveManifest(file: string): Promise<ArchiveEntry[]> {
  let text: string | undefined;
  const ex = tarExtract();
  ex.on('entry', (header, stream, next) => {
    if (header.name.replace(/^\.\//, '') !== 'manifest.json' || text !== undefined) {
      stream.on('end', next).resume();
      return;
    }
    if ((header.size ?? 0) > MANIFEST_CAP) {
      stream.destroy(new VmwuError('BAD_IMAGE', `docker load: the archive's manifest.json is ${header.size} bytes`, 'give an archive `docker save` wrote'));
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => { chunks.push(c as Buffer); }).on('end', () => {
      text = Buffer.concat(chunks).toString('utf8');
      next();
    });
  });
  try {
    await pipeline(createReadStream(file), ex);
  } catch (e) {
    if (e instanceof VmwuError) throw e;
    throw new VmwuError('BAD_IMAGE', `docker load: the input is not a tar archive (${(e as Error).message})`, 'give what `docker save IMAGE` writes');
  }
  if (text === undefined) throw new VmwuError('BAD_IMAGE', 'docker load: the archive has no manifest.json, so it is not a docker-archive', 'give what `docker save IMAGE` writes (an OCI archive goes in with vmwu base pull oci-archive:FILE)');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new VmwuError('BAD_IMAGE', `docker load: the archive's manifest.json is not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(doc) || !doc.every((x) => x && typeof x === 'object')) throw new VmwuError('BAD_IMAGE', 'docker load: the archive\'s manifest.json is not a list of images');
  return doc as ArchiveEntry[];
}

/** Loads the archive in `file`: the base it became and the names it answers to. */
export async function dockerLoad(store: Store, file: string): Promise<{ base: string; names: string[]; id: string }> {
  const entries = await readArchiveManifest(file);
  if (entries.length !== 1) {
    throw new VmwuError('BAD_IMAGE', `docker load: the archive holds ${entries.length} images; vmwu loads one at a time`, 'save each image on its own: docker save IMAGE > image.tar');
  }
  const tags = (entries[0]!.RepoTags ?? []).filter((t): t is string => typeof t === 'string');
  // Refused before anything is converted: a name the archive gives must be one docker accepts.
  const names = tags.map((t) => {
    const n = parseDockerImage(t);
    if (n.kind !== 'registry') throw new VmwuError('BAD_IMAGE', `docker load: the archive names its image ${t}, a name vmwu keeps for its own units and bases`);
    return n;
  });
  const first = names[0];
  const { base } = await pullImageBase(store, `docker-archive:${file}`, {
    forBuild: true, name: first ? `${first.repository.split('/').pop()}:${first.tag}` : 'loaded',
  });
  store.db.transaction(() => {
    for (const n of names) putSetting(store.db, `${LOADED_NAME}${n.ref}`, base.name);
  })();
  return { base: base.name, names: tags, id: base.digest };
}
