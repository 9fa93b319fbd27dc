import { checkNoControlChars } from '../control-chars.js';
import { z } from 'zod';
import { VmwuError } from '../errors.js';
import { ImageTools } from '../../guest/protocol.js';

/**
 * A job's command and parameters as the guest receives them: parameter names checked, `${name}`
 * substituted, and the `cmd` and `job.env` scripts the agent sources.
 */

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Single-quotes a word for POSIX sh; the guest sources what this produces. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

export function checkParamName(name: string, where = '--param'): void {
  if (!NAME.test(name)) {
    throw new VmwuError('BAD_PARAM', `${where}: "${name}" is not a valid parameter name`,
      'names are exported as environment variables: letters, digits and _, not starting with a digit');
  }
  if (name.startsWith('VMWU_')) throw new VmwuError('BAD_PARAM', `${where}: "${name}" is reserved (VMWU_ prefix)`);
}

/** Parses `k=v` pairs; the value may contain `=` and be empty. */
export function parseParamPairs(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new VmwuError('BAD_PARAM', `--param ${p}: expected name=value`, 'for example --param n=5');
    const k = p.slice(0, i);
    checkParamName(k);
    checkNoControlChars(p.slice(i + 1), `--param ${k}`);
    out[k] = p.slice(i + 1);
  }
  return out;
}

/**
 * Replaces `${name}` with the param's value. Unknown names are left alone: they may
 * be meant for the guest's shell (`sh -c 'echo ${HOME}'`), where the params are
 * also exported.
 */
export function substituteParams(word: string, params: Record<string, string>): string {
  return word.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, name: string) =>
    Object.hasOwn(params, name) ? params[name]! : whole);
}

/**
 * How a job's command runs in a container image's root, as the image's config
 * says (src/base/image-process.ts): its environment, the directory it starts in
 * ('' for the work dir) and its user ('' for root).
 */
export interface GuestProcess {
  env: string[];
  workingDir: string;
  user: string;
}

/** A GuestProcess as it travels in task files and remote requests. */
export const guestProcessSchema = z.object({
  env: z.array(z.string().max(65536)).max(4096),
  workingDir: z.string().max(4096),
  user: z.string().max(256),
});

/** Docker's PATH for an image whose config sets none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The lines that put a command into an image's process: its directory, its
 * environment (the job's params win over the image's, as `docker run -e` does),
 * HOME from the user's passwd entry unless the image sets it, and the user
 * (guest/run-as.c, which also hands it the work dir for its outputs).
 */
function processPrefix(p: GuestProcess, params: Record<string, string>): { lines: string[]; argv: string[] } {
  const lines: string[] = [];
  if (p.workingDir) lines.push(`mkdir -p ${shellQuote(p.workingDir)} && cd ${shellQuote(p.workingDir)} || exit 125`);
  const env = p.env.some((e) => e.startsWith('PATH=')) ? p.env : [`PATH=${DEFAULT_PATH}`, ...p.env];
  if (!env.some((e) => e.startsWith('HOME='))) lines.push('unset HOME');
  for (const e of env) {
    const i = e.indexOf('=');
    const k = i > 0 ? e.slice(0, i) : '';
    if (!NAME.test(k) || Object.hasOwn(params, k)) continue;
    lines.push(`export ${k}=${shellQuote(e.slice(i + 1))}`);
  }
  return { lines, argv: [ImageTools.runAs, p.user || '0', '/job/work'] };
}

/**
 * The guest's `cmd` file: the argv, each word quoted, so no word is re-split.
 * `stdin` (a path relative to the work dir) becomes its standard input; a file
 * that is not there fails the job with the shell's own words. With `process`,
 * the command runs as a container image's config says.
 */
export function commandScript(argv: string[], params: Record<string, string>, o: { stdin?: string; process?: GuestProcess } = {}): string {
  if (argv.length === 0) throw new VmwuError('NO_COMMAND', 'no command to run', 'give it after --, e.g. vmwu run --base tiny -- echo hi');
  const lines = o.stdin === undefined ? [] : [`exec <${shellQuote(substituteParams(o.stdin, params))}`];
  const words = argv.map((w) => shellQuote(substituteParams(w, params)));
  if (!o.process) return [...lines, words.join(' ')].join('\n') + '\n';
  const p = processPrefix(o.process, params);
  return [...lines, ...p.lines, `exec ${[...p.argv.map(shellQuote), ...words].join(' ')}`].join('\n') + '\n';
}

/** The guest's `job.env`: params exported, plus VMWU_* facts about the job. */
export function jobEnvScript(params: Record<string, string>, vmwu: Record<string, string>): string {
  const lines = Object.entries(params).map(([k, v]) => {
    checkParamName(k);
    return `export ${k}=${shellQuote(v)}`;
  });
  for (const [k, v] of Object.entries(vmwu)) lines.push(`export VMWU_${k}=${shellQuote(v)}`);
  return lines.join('\n') + '\n';
}
