import { checkNoControlChars } from '../control-chars.js';
import { VmwuError } from '../errors.js';

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
 * The guest's `cmd` file: the argv, each word quoted, so no word is re-split.
 * `stdin` (a path relative to the work dir) becomes its standard input; a file
 * that is not there fails the job with the shell's own words.
 */
export function commandScript(argv: string[], params: Record<string, string>, o: { stdin?: string } = {}): string {
  if (argv.length === 0) throw new VmwuError('NO_COMMAND', 'no command to run', 'give it after --, e.g. vmwu run --base tiny -- echo hi');
  const redirect = o.stdin === undefined ? '' : `exec <${shellQuote(substituteParams(o.stdin, params))}\n`;
  return redirect + argv.map((w) => shellQuote(substituteParams(w, params))).join(' ') + '\n';
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
