import { VmwuError } from '../errors.js';
import { parseImageRef, type ImageRef } from '../oci/reference.js';

/**
 * Where `vmwu push` and `vmwu pull` put and find units: a registry reference, with or
 * without `docker://`, or a local OCI layout (`oci:DIR:TAG`), e.g. for a site without
 * a registry. Pure apart from `resolve` of a layout path.
 */
export function unitRef(s: string): ImageRef {
  const ref = parseImageRef(/^[a-z-]+:(?!\d)/.test(s) && !s.startsWith('docker://') && !/^[^/]+:\d+\//.test(s) ? s : s.startsWith('docker://') ? s : `docker://${s}`, 'unit reference');
  if (ref.transport !== 'docker' && ref.transport !== 'oci') {
    throw new VmwuError('BAD_IMAGE_REF', `units are pushed to and pulled from registries (HOST/REPO:TAG) or OCI layouts (oci:DIR:TAG), not ${ref.transport}:`,
      'for a single file, use vmwu export and vmwu import');
  }
  return ref;
}

/** The reference pinned to the manifest digest it resolved to, so the blobs fetched are those of the manifest checked. */
export function pinned(ref: ImageRef, digest: string): ImageRef {
  if (ref.transport !== 'docker') return ref;
  return { transport: 'docker', rest: `${ref.rest.replace(/@sha256:[0-9a-f]{64}$/, '').replace(/(\/[^/:]+):[\w][\w.-]*$/, '$1')}@${digest}` };
}
