import { resolve } from 'node:path';
import { checkNoControlChars } from '../control-chars.js';
import { VmwuError } from '../errors.js';

/**
 * Container image references as skopeo spells them (`docker://`, `oci:`, `oci-archive:`,
 * `docker-archive:`): parsed, checked and made absolute. Pure apart from `resolve` of a path.
 */

export type Transport = 'docker' | 'oci' | 'oci-archive' | 'docker-archive';

export interface ImageRef {
  transport: Transport;
  /** What follows the transport: `HOST/REPO[:TAG|@DIGEST]`, or a path with an optional `:TAG`. */
  rest: string;
}

const PREFIXES: [string, Transport][] = [['docker://', 'docker'], ['oci-archive:', 'oci-archive'], ['docker-archive:', 'docker-archive'], ['oci:', 'oci']];

/** Whether `s` names a container image (a transport prefix), not a vmwu base name. */
export function isImageRef(s: string): boolean {
  return PREFIXES.some(([p]) => s.startsWith(p));
}

/** A registry reference: host, repository and a tag or digest. */
const DOCKER_REF = /^([a-z0-9.-]+(?::\d+)?)\/([a-z0-9]+(?:[._-]+[a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*)(?::([\w][\w.-]{0,127})|@(sha256:[0-9a-f]{64}))?$/;

/** `relativeTo`: the directory a relative layout or archive path is taken from (a spec's directory); default the current one. */
export function parseImageRef(s: string, where = 'image reference', relativeTo?: string): ImageRef {
  checkNoControlChars(s, where);
  const hit = PREFIXES.find(([p]) => s.startsWith(p));
  if (!hit) {
    throw new VmwuError('BAD_IMAGE_REF', `${where} "${s}" names no transport`,
      'write docker://HOST/REPO:TAG, oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE');
  }
  const [prefix, transport] = hit;
  let rest = s.slice(prefix.length);
  if (!rest) throw new VmwuError('BAD_IMAGE_REF', `${where} "${s}" is empty after ${prefix}`);
  if (transport === 'docker') {
    if (!DOCKER_REF.test(rest)) {
      throw new VmwuError('BAD_IMAGE_REF', `${where} "${s}" is not HOST/REPO[:TAG|@sha256:DIGEST]`,
        'name the registry host: docker://docker.io/library/debian:bookworm, docker://127.0.0.1:5000/tools/blast:2.14');
    }
  } else {
    // A relative path is the caller's: the store runs skopeo from elsewhere.
    const colon = transport === 'oci' ? rest.lastIndexOf(':') : -1;
    const path = colon > 0 ? rest.slice(0, colon) : rest;
    const tag = colon > 0 ? rest.slice(colon) : '';
    rest = (relativeTo ? resolve(relativeTo, path) : resolve(path)) + tag;
  }
  return { transport, rest };
}

export function formatImageRef(r: ImageRef): string {
  return r.transport === 'docker' ? `docker://${r.rest}` : `${r.transport}:${r.rest}`;
}

/** A registry reference's host (for credentials and certificates), or null for a local transport. */
export function registryHost(r: ImageRef): string | null {
  return r.transport === 'docker' ? r.rest.split('/')[0]! : null;
}

/** The name a pulled image gets as a base when none is given: its repository's last part and tag. */
export function defaultBaseName(r: ImageRef): string {
  if (r.transport === 'docker') {
    const repo = r.rest.split('/').slice(1).join('/');
    const name = repo.split('/').pop()!.replace(/@sha256:.*$/, '');
    return name.includes(':') ? name : `${name}:${r.rest.includes('@') ? r.rest.split('@sha256:')[1]!.slice(0, 12) : 'latest'}`;
  }
  const base = r.rest.split('/').pop()!;
  return base.replace(/\.(tar|oci|docker)$/, '') || 'image';
}

/** `HOST/REPO` of a registry reference, without its tag or digest: the repository, as a signature names it. */
export function repositoryOf(ref: ImageRef): string {
  return ref.rest.replace(/@sha256:[0-9a-f]{64}$/, '').replace(/:[\w][\w.-]*$/, '');
}

/** A registry reference pinned to a manifest digest (a local layout is returned as it is). */
export function byDigest(ref: ImageRef, digest: string): ImageRef {
  return ref.transport === 'docker' ? { transport: 'docker', rest: `${repositoryOf(ref)}@${digest}` } : ref;
}
