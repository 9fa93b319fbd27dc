import { accessSync, constants, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { VmwuError } from '../errors.js';

/**
 * Before a Debian base build by a user other than root: mmdebstrap's unshare mode needs
 * newuidmap/newgidmap (uidmap), genext2fs for its ext2 output, sub-uid and sub-gid
 * ranges for the user, and user namespaces it may create. Missing any of them, the
 * build would fail minutes in with mmdebstrap's own words; this says it up front, with
 * what to install or configure. The decision is pure; `checkRootlessBuild` gathers the facts.
 */

/** Where a tool was found: on PATH, only in an sbin directory that is not on PATH, or nowhere. */
export type ToolPlace = 'path' | 'sbin' | 'missing';

export interface RootlessFacts {
  user: string;
  tools: Record<string, ToolPlace>;
  /** /etc/subuid and /etc/subgid, or null when missing or unreadable. */
  subuid: string | null;
  subgid: string | null;
  /** The user-namespace switches as /proc/sys has them (undefined: this kernel has no such switch). */
  usernsClone?: string;
  maxUserNamespaces?: string;
  apparmorRestrictsUserns?: string;
}

/** What a rootless Debian build runs, and the Debian package of each. */
export const ROOTLESS_TOOLS: { tool: string; pkg: string }[] = [
  { tool: 'mmdebstrap', pkg: 'mmdebstrap' },
  { tool: 'newuidmap', pkg: 'uidmap' },
  { tool: 'newgidmap', pkg: 'uidmap' },
  { tool: 'genext2fs', pkg: 'genext2fs' },
  { tool: 'resize2fs', pkg: 'e2fsprogs' },
];

/** A guest's packages use ids up to 65534 (nobody): mmdebstrap maps the namespace's ids 0… onto the range. */
export const MIN_SUBIDS = 65536;

export interface RootlessProblems {
  missingTools: string[];
  /** Debian packages that provide the missing tools. */
  packages: string[];
  /** Tools installed in /usr/sbin or /sbin that PATH does not reach (runTool looks them up on PATH). */
  offPath: string[];
  /** What is wrong with /etc/subuid and /etc/subgid for the user. */
  subids: string[];
  /** What keeps the user from creating user namespaces. */
  userns: string[];
}

/** The user's range in a /etc/subuid-style file, found as mmdebstrap finds it: the first line whose name is the user's. */
export function subidRange(text: string, user: string): { start: number; count: number } | undefined {
  for (const line of text.split('\n')) {
    const [name, start, count] = line.trim().split(':');
    if (name !== user) continue;
    if (!/^\d+$/.test(start ?? '') || !/^\d+$/.test(count ?? '')) return undefined;
    return { start: Number(start), count: Number(count) };
  }
  return undefined;
}

export function rootlessProblems(f: RootlessFacts): RootlessProblems {
  const missing = ROOTLESS_TOOLS.filter((t) => (f.tools[t.tool] ?? 'missing') === 'missing');
  const subids: string[] = [];
  for (const [file, text] of [['/etc/subuid', f.subuid], ['/etc/subgid', f.subgid]] as const) {
    if (text === null) {
      subids.push(`${file} is missing or unreadable`);
      continue;
    }
    const r = subidRange(text, f.user);
    if (!r) subids.push(`${file} has no range for ${f.user}`);
    else if (r.count < MIN_SUBIDS) subids.push(`${file} gives ${f.user} ${r.count} ids, fewer than the ${MIN_SUBIDS} a Debian root needs`);
  }
  const userns: string[] = [];
  if (f.usernsClone === '0') userns.push('unprivileged user namespaces are off (kernel.unprivileged_userns_clone = 0)');
  if (f.maxUserNamespaces === '0') userns.push('user namespaces are off (user.max_user_namespaces = 0)');
  if (f.apparmorRestrictsUserns === '1') userns.push('AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)');
  return {
    missingTools: missing.map((t) => t.tool),
    packages: [...new Set(missing.map((t) => t.pkg))],
    offPath: ROOTLESS_TOOLS.filter((t) => f.tools[t.tool] === 'sbin').map((t) => t.tool),
    subids,
    userns,
  };
}

/** The build's refusal, naming every problem and each one's fix; undefined when nothing is missing. */
export function rootlessError(p: RootlessProblems, user: string): VmwuError | undefined {
  const what: string[] = [];
  const fix: string[] = [];
  if (p.missingTools.length) {
    what.push(`missing ${p.missingTools.join(', ')} (Debian package${p.packages.length > 1 ? 's' : ''} ${p.packages.join(', ')})`);
    fix.push(`sudo apt-get install ${p.packages.join(' ')} (or run \`sh scripts/setup.sh\` as root, which installs them)`);
  }
  if (p.offPath.length) {
    what.push(`${p.offPath.join(', ')} ${p.offPath.length > 1 ? 'are' : 'is'} installed but not on your PATH`);
    fix.push('add the sbin directories to PATH: export PATH="$PATH:/usr/sbin:/sbin"');
  }
  if (p.subids.length) {
    what.push(p.subids.join('; '));
    fix.push(`give ${user} sub-uid and sub-gid ranges of ${MIN_SUBIDS} ids no other user has, e.g. sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user}`);
  }
  if (p.userns.length) {
    what.push(p.userns.join('; '));
    fix.push('allow them, e.g. sudo sysctl kernel.unprivileged_userns_clone=1 (and user.max_user_namespaces above 0; on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0)');
  }
  if (!what.length) return undefined;
  return new VmwuError('ROOTLESS_PREREQS',
    `a Debian base built without root (as ${user}, with mmdebstrap's unshare mode) needs what this host lacks: ${what.join('; ')}`,
    fix.join('; then ') + '. As root, `vmwu base build debian` needs none of these');
}

const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function executableIn(dirs: string[], tool: string): boolean {
  return dirs.some((d) => {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The facts, from this host and process. */
export function rootlessFacts(env: NodeJS.ProcessEnv = process.env): RootlessFacts {
  const path = (env.PATH ?? '').split(delimiter).filter(Boolean);
  const tools: Record<string, ToolPlace> = {};
  for (const { tool } of ROOTLESS_TOOLS) tools[tool] = executableIn(path, tool) ? 'path' : executableIn(SBIN, tool) ? 'sbin' : 'missing';
  const sysctl = (p: string) => readOrNull(p)?.trim();
  return {
    user: userInfo().username, tools, subuid: readOrNull('/etc/subuid'), subgid: readOrNull('/etc/subgid'),
    usernsClone: sysctl('/proc/sys/kernel/unprivileged_userns_clone'), maxUserNamespaces: sysctl('/proc/sys/user/max_user_namespaces'),
    apparmorRestrictsUserns: sysctl('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'),
  };
}

/** Throws ROOTLESS_PREREQS when a rootless Debian build would fail for want of a tool, a sub-id range or user namespaces. */
export function checkRootlessBuild(env: NodeJS.ProcessEnv = process.env): void {
  const f = rootlessFacts(env);
  const e = rootlessError(rootlessProblems(f), f.user);
  if (e) throw e;
}
