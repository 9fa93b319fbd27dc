import { VmwuError } from '../errors.js';
import { isImageRef, parseImageRef, type ImageRef } from '../oci/reference.js';

/**
 * Where `vmwu push` and `vmwu pull` put and find units: a registry reference, with or
 * without `docker://`, or a local OCI layout (`oci:DIR:TAG`), e.g. for a site without
 * a registry. Pure apart from `resolve` of a layout path.
 */
export function unitRef(s: string): ImageRef {
  const ref = parseImageRef(isImageRef(s) ? s : `docker://${s}`, 'unit reference');
  if (ref.transport !== 'docker' && ref.transport !== 'oci') {
    throw new VmwuError('BAD_IMAGE_REF', `units are pushed to and pulled from registries (HOST/REPO:TAG) or OCI layouts (oci:DIR:TAG), not ${ref.transport}:`,
      'for a single file, use vmwu export and vmwu import');
  }
  return ref;
}
