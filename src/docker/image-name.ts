import { VmwuError } from '../errors.js';

/**
 * Image names as docker and workflow engines write them (`debian:bookworm`,
 * `quay.io/biocontainers/samtools:1.21--h96c455f_1`, `localhost:5000/lab/tool@sha256:…`),
 * and vmwu's own units and bases as `vmwu/NAME[:VERSION]`. Pure.
 */

export type DockerImageName =
  | { kind: 'vmwu'; name: string; tag: string | null }
  | { kind: 'registry'; /** docker://HOST/REPO:TAG|@DIGEST, as vmwu base pull takes it */ ref: string; repository: string; tag: string };

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

export function parseDockerImage(name: string): DockerImageName {
  if (!name || /\s|[\p{Cc}]/u.test(name)) throw new VmwuError('DOCKER_IMAGE', `"${name}" is not an image name`);
  if (name.startsWith('vmwu/')) {
    const rest = name.slice(5);
    const i = rest.lastIndexOf(':');
    return i > 0 ? { kind: 'vmwu', name: rest.slice(0, i), tag: rest.slice(i + 1) } : { kind: 'vmwu', name: rest, tag: null };
  }
  let rest = name;
  let digest = '';
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at);
    rest = rest.slice(0, at);
    if (!/^@sha256:[0-9a-f]{64}$/.test(digest)) throw new VmwuError('DOCKER_IMAGE', `"${name}": the digest is not sha256:<64 hex digits>`);
  }
  let tag = 'latest';
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const parts = rest.split('/');
  const first = parts[0]!;
  const hasHost = parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const host = hasHost ? first : 'docker.io';
  const named = hasHost ? parts.slice(1) : parts;
  // Docker Hub's official images live under library/, however the host is written.
  const path = host === 'docker.io' && named.length === 1 ? ['library', ...named] : named;
  if (!path.every((p) => COMPONENT.test(p))) throw new VmwuError('DOCKER_IMAGE', `"${name}" is not an image name docker accepts (repository names are lower case)`);
  if (!/^[\w][\w.-]{0,127}$/.test(tag)) throw new VmwuError('DOCKER_IMAGE', `"${name}": "${tag}" is not a tag`);
  const repository = `${host}/${path.join('/')}`;
  return { kind: 'registry', ref: `docker://${repository}${digest || `:${tag}`}`, repository: shortRepository(repository), tag: digest ? '<none>' : tag };
}

/** The repository as `docker images` shows it: Docker Hub's library images by their bare name, other Hub images without the host. */
export function shortRepository(repository: string): string {
  if (repository.startsWith('docker.io/library/')) return repository.slice('docker.io/library/'.length);
  if (repository.startsWith('docker.io/')) return repository.slice('docker.io/'.length);
  return repository;
}

/** A pulled base's image reference (`docker://HOST/REPO:TAG`) as `docker images` shows it, or null for other transports. */
export function dockerNameOfRef(ref: string): { repository: string; tag: string } | null {
  const m = /^docker:\/\/([^@]+?)(?::([\w][\w.-]{0,127}))?(@sha256:[0-9a-f]{64})?$/.exec(ref);
  if (!m) return null;
  return { repository: shortRepository(m[1]!), tag: m[2] ?? (m[3] ? '<none>' : 'latest') };
}
