import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { VmwuError } from '../errors.js';
import { runTool } from '../image/tool.js';
import { formatImageRef, registryHost, type ImageRef } from './reference.js';
import { authFileFor, authFilePath, skopeoGlobalFlags, skopeoRegistryFlags, type RegistryOptions } from './registry-options.js';

/**
 * skopeo, vmwu's transport for container images (Debian's `skopeo`): the raw manifest of a
 * reference, a copy into an OCI layout whose blobs land in a shared directory, and a login.
 * Its failures become typed errors that say which of the usual causes it was.
 */

const HINT = 'install skopeo (Debian package skopeo)';

/** The auth file skopeo reads: `--creds` as a private file in `work`, else the user's. */
function authFor(ref: ImageRef, o: RegistryOptions, work: string): string | undefined {
  const host = registryHost(ref);
  if (o.creds && host) {
    const f = join(work, 'creds.json');
    writeFileSync(f, authFileFor(host, o.creds), { mode: 0o600 });
    return f;
  }
  return o.authFile ?? authFilePath();
}

/** skopeo's words for the common failures, as errors a user can act on. */
export function skopeoError(e: unknown, what: string): unknown {
  if (!(e instanceof VmwuError) || e.code !== 'TOOL_FAILED') return e;
  const m = e.message;
  const r = what;
  const says = (re: RegExp) => re.test(m);
  if (says(/unauthorized|authentication required|invalid username\/password|denied: requested access/i)) {
    return new VmwuError('REGISTRY_AUTH', `the registry refused the credentials for ${r}`, 'log in with `vmwu login HOST` or give --creds USER:PASS', { cause: e });
  }
  if (says(/manifest unknown|name unknown|not found|no such file or directory|does not exist|no descriptor found for reference/i)) {
    return new VmwuError('IMAGE_NOT_FOUND', `no image ${r}: the registry or archive has no such name or tag`, 'check the name and tag with `skopeo list-tags` or the registry\'s web page', { cause: e });
  }
  if (says(/digest did not match|digest mismatch|doesn't match|does not match|happened during read: unexpected EOF/i)) {
    return new VmwuError('IMAGE_DIGEST', `a blob of ${r} does not match its digest: it was changed or damaged on the way`, 'nothing was registered; pull again, and if it persists tell the registry\'s owner', { cause: e });
  }
  if (says(/x509|certificate|tls:/i)) {
    return new VmwuError('REGISTRY_TLS', `the registry's TLS certificate for ${r} is not trusted`, 'give --cert-dir DIR with its CA (ca.crt), or --tls-verify=false for a registry you trust', { cause: e });
  }
  if (says(/connection refused|no such host|i\/o timeout|network is unreachable|server gave HTTP response to HTTPS client/i)) {
    return new VmwuError('REGISTRY_UNREACHABLE', `cannot reach the registry of ${r}`, 'check the host and port; a plain-HTTP registry needs --tls-verify=false', { cause: e });
  }
  if (says(/choosing image instance|no image found in (image index|manifest list) for architecture/i)) {
    return new VmwuError('IMAGE_PLATFORM', `${r} has no linux/amd64 image`, undefined, { cause: e });
  }
  return new VmwuError('PULL_FAILED', `cannot fetch ${r}: ${m}`, 'run the same with `skopeo inspect` to see more', { cause: e });
}

/** The reference's raw manifest or index, exactly as stored (its bytes are what its digest covers). */
export async function inspectRaw(ref: ImageRef, o: RegistryOptions, work: string): Promise<Buffer> {
  const auth = authFor(ref, o, work);
  try {
    const { stdout } = await runTool('skopeo', [...skopeoGlobalFlags(), 'inspect', '--raw', '--retry-times', '1', ...skopeoRegistryFlags(o, '', auth), formatImageRef(ref)], { hint: HINT });
    return Buffer.from(stdout, 'utf8');
  } catch (e) {
    throw skopeoError(e, formatImageRef(ref));
  }
}

/**
 * Copies the linux/amd64 image of `ref` into the OCI layout `layout` (tag `img`),
 * its blobs into `blobDir`, where blobs already there are not fetched again.
 * skopeo verifies every blob against its digest on the way.
 */
export async function copyToLayout(ref: ImageRef, o: RegistryOptions, layout: string, blobDir: string, work: string): Promise<void> {
  const auth = authFor(ref, o, work);
  try {
    await runTool('skopeo', [...skopeoGlobalFlags(), 
      '--override-os', 'linux', '--override-arch', 'amd64', 'copy', '--quiet', '--retry-times', '1',
      ...skopeoRegistryFlags(o, 'src-', auth), '--dest-shared-blob-dir', blobDir, formatImageRef(ref), `oci:${layout}:img`,
    ], { hint: HINT });
  } catch (e) {
    throw skopeoError(e, formatImageRef(ref));
  }
}

/**
 * Checks credentials with the registry and stores them in the containers auth file
 * (`skopeo login`), so that vmwu, podman and skopeo all find them. The password goes
 * to skopeo on its standard input, never on a command line.
 */
export async function registryLogin(host: string, user: string, password: string, o: RegistryOptions): Promise<string> {
  const authFile = o.authFile ?? authFilePath(process.env, true)!;
  mkdirSync(dirname(authFile), { recursive: true, mode: 0o700 });
  try {
    await runTool('skopeo', [...skopeoGlobalFlags(), 'login', '--authfile', authFile, '--username', user, '--password-stdin', ...skopeoRegistryFlags({ ...o, creds: undefined }, '', undefined), host],
      { input: password, hint: HINT });
  } catch (e) {
    throw skopeoError(e, host);
  }
  return authFile;
}

/**
 * Pushes the manifest tagged `tag` in the OCI layout `layout` to `ref`, byte for byte
 * (`--preserve-digests`: no recompression, so the digests vmwu computed are the ones
 * stored). skopeo asks the registry for each blob first and uploads only those it
 * lacks; returns the digests it skipped so (read from its debug log, the only place
 * it says so).
 */
export async function pushLayout(layout: string, tag: string, ref: ImageRef, o: RegistryOptions, work: string): Promise<{ skipped: Set<string> }> {
  const auth = authFor(ref, o, work);
  let stderr: string;
  try {
    ({ stderr } = await runTool('skopeo', [...skopeoGlobalFlags(), 
      '--debug', 'copy', '--preserve-digests', '--retry-times', '1', ...skopeoRegistryFlags(o, 'dest-', auth), `oci:${layout}:${tag}`, formatImageRef(ref),
    ], { hint: HINT }));
  } catch (e) {
    throw skopeoError(e, formatImageRef(ref));
  }
  return { skipped: new Set([...stderr.matchAll(/Skipping blob (sha256:[0-9a-f]{64}) \(already present\)/g)].map((m) => m[1]!)) };
}
