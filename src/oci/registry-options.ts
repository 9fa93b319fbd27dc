import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { VmwuError } from '../errors.js';

/**
 * How vmwu reaches a registry as users already have it set up for podman and skopeo:
 * the containers auth file, `--creds`, a certificate directory, TLS verification.
 * Mirrors come from registries.conf, which skopeo reads itself, or from the file
 * CONTAINERS_REGISTRIES_CONF names (podman's variable; skopeo 1.9 reads it only when
 * told). Pure but for the existence checks of the auth file's usual places.
 */

export interface RegistryOptions {
  /** `USER:PASS`; else the auth file's entry for the host, if any. */
  creds?: string;
  authFile?: string;
  certDir?: string;
  tlsVerify?: boolean;
}

/**
 * The containers auth file in the order podman and skopeo use: REGISTRY_AUTH_FILE,
 * ${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json. `forWriting`
 * names where `vmwu login` writes when none exists yet.
 */
export function authFilePath(env: NodeJS.ProcessEnv = process.env, forWriting = false): string | undefined {
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE;
  const runtime = env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json') : undefined;
  const config = join(env.HOME ?? homedir(), '.config', 'containers', 'auth.json');
  for (const p of [runtime, config]) if (p && existsSync(p)) return p;
  return forWriting ? (runtime ?? config) : undefined;
}

/**
 * skopeo's flags for one side of a transfer: `prefix` is '' for inspect and
 * login, 'src-' or 'dest-' for copy. The password never goes on a command line
 * others can read: `--creds` is passed through a private auth file by the caller.
 */
export function skopeoRegistryFlags(o: RegistryOptions, prefix: '' | 'src-' | 'dest-', authFile: string | undefined): string[] {
  const f: string[] = [];
  if (authFile) f.push(`--${prefix}authfile`, authFile);
  if (o.certDir) f.push(`--${prefix}cert-dir`, o.certDir);
  if (o.tlsVerify === false) f.push(`--${prefix}tls-verify=false`);
  return f;
}

/** `USER:PASS` split and checked. */
function parseCreds(creds: string): { user: string; password: string } {
  const i = creds.indexOf(':');
  if (i <= 0) throw new VmwuError('BAD_OPTION', '--creds: expected USER:PASSWORD', 'for example --creds alice:s3cret');
  return { user: creds.slice(0, i), password: creds.slice(i + 1) };
}

/** The auth file's JSON for one host: what `--creds` becomes for skopeo. */
export function authFileFor(host: string, creds: string): string {
  const { user, password } = parseCreds(creds);
  return JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } });
}

/** skopeo's global flags that come from the environment: the registries.conf podman would read. */
export function skopeoGlobalFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  return env.CONTAINERS_REGISTRIES_CONF ? ['--registries-conf', env.CONTAINERS_REGISTRIES_CONF] : [];
}
