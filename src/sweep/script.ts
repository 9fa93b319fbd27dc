import { InputLayout } from '../../guest/protocol.js';
import { escapeControlChars } from '../control-chars.js';
import { VmwuError } from '../errors.js';
import { shellQuote } from '../run/command.js';
import { confineDestination, confinePath } from './confine.js';
import type { Command } from './plan/index.js';

/** A job's plan commands turned into what runs where: copies into the guest before it boots, one POSIX sh script inside it, and copies out after it. */

export type OnError = 'fail' | 'ignore';

/** A `copy` between the experiment and the guest's work dir, with the onerror mode in force where it was written. */
export interface Transfer {
  from: string;
  to: string;
  onerror: OnError;
  /** The copy's command number in the task (1-based), for messages. */
  n?: number;
}

/** One shell command of the job script, with its position in the task for messages. */
export interface Step {
  n: number;
  label: string;
  shell: string;
  onerror: OnError;
}

export interface JobProgram {
  stageIn: Transfer[];
  steps: Step[];
  stageOut: Transfer[];
}

/** How long a job script may be: it travels whole in task files and SSH requests. */
export const SCRIPT_MAX_CHARS = 16 * 1024 * 1024;

/** The name the script has in the guest's work dir; it removes itself before the first command. */
export const SCRIPT_NAME = '.vmwu-job.sh';

/**
 * How a job's script reaches its guest and runs there. Most jobs: beside the
 * command, outside the work dir (JobRequest.script), sourced by the job's shell,
 * so a job starts no process of its own for it (no shell, and no rm of it in the
 * work dir), which under emulation costs a short job more than its commands.
 * Its `exit` is the job's. Under an image's process the command is exec'd as
 * the image's user (src/run/command.ts), and in `vmwu shell --job` a person runs
 * it: there it is a file of the work dir (SCRIPT_NAME), run by `sh`, that removes
 * itself first.
 */
export type ScriptPlace = 'beside' | 'work';

/** The command that runs the script, placed so. Pure. */
export function scriptArgv(place: ScriptPlace): string[] {
  return place === 'work' ? ['sh', SCRIPT_NAME] : ['.', `../in/${InputLayout.script}`];
}

function label(c: Command): string {
  let s: string;
  switch (c.kind) {
    case 'exec':
      s = `exec ${c.argv.join(' ')}`;
      break;
    case 'shexec':
      s = `shexec ${c.cmd}`;
      break;
    case 'copy':
      s = `copy ${c.from.loc}:${c.from.path} ${c.to.loc}:${c.to.path}`;
      break;
    case 'redirect':
      s = `redirect ${c.stream} ${c.file === null ? 'off' : `${c.append ? 'append ' : ''}to ${c.file}`}`;
      break;
    case 'onerror':
      s = `onerror ${c.mode}`;
      break;
  }
  s = s.replace(/\s+/g, ' ');
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/**
 * Splits a job's commands into what happens on the host before the boot (copies
 * root→node), one shell script run in the guest (exec, shexec, node→node copies,
 * with onerror and redirect applied), and what happens on the host after the run
 * (copies node→root). Validates every copy path, so a plan that would write outside
 * the experiment is refused when it is created, not half-way through.
 */
export function compileJob(commands: Command[], where = 'job'): JobProgram {
  const prog: JobProgram = { stageIn: [], steps: [], stageOut: [] };
  let mode: OnError = 'fail';
  // Once a redirect has opened (or truncated) its file, every later command appends,
  // so two commands in a row both land in it and stdout+stderr to one file interleave.
  const target: Record<'stdout' | 'stderr', string | null> = { stdout: null, stderr: null };
  const redirs = () => (target.stdout === null ? '' : ` >>${shellQuote(target.stdout)}`) + (target.stderr === null ? '' : ` 2>>${shellQuote(target.stderr)}`);
  commands.forEach((c, i) => {
    const n = i + 1;
    const at = `${where}, command ${n} (${label(c)})`;
    switch (c.kind) {
      case 'onerror':
        mode = c.mode;
        return;
      case 'redirect':
        target[c.stream] = c.file;
        if (c.file !== null && !c.append) prog.steps.push({ n, label: label(c), shell: `: >${shellQuote(c.file)}`, onerror: mode });
        return;
      case 'exec':
        // A subshell, so that `exec exit 3` or `exec cd x` behave like a program that
        // did so, not like a change to the script itself.
        prog.steps.push({ n, label: label(c), shell: `( ${c.argv.map(shellQuote).join(' ')} )${redirs()}`, onerror: mode });
        return;
      case 'shexec':
        prog.steps.push({ n, label: label(c), shell: `sh -c ${shellQuote(c.cmd)}${redirs()}`, onerror: mode });
        return;
      case 'copy': {
        const { from, to } = c;
        if (from.loc === 'root' && to.loc === 'root') {
          throw new VmwuError('PLAN_COPY', `${at}: copies from root to root`, 'a copy moves files between the experiment (root:) and the job (node:)');
        }
        if (from.loc === 'node' && to.loc === 'node') {
          prog.steps.push({ n, label: label(c), shell: `cp -R -- ${shellQuote(from.path)} ${shellQuote(to.path)}`, onerror: mode });
          return;
        }
        const t = { from: confinePath(from.path, `${at}: source`), to: confineDestination(to.path, from.path, `${at}: destination`), onerror: mode, n };
        if (t.to === SCRIPT_NAME && to.loc === 'node') throw new VmwuError('PLAN_COPY', `${at}: ${SCRIPT_NAME} is reserved for vmwu's job script`);
        (from.loc === 'root' ? prog.stageIn : prog.stageOut).push(t);
        return;
      }
    }
  });
  return prog;
}

export interface ScriptContext {
  experiment: string;
  job: number;
  attempt: number;
}

/**
 * The POSIX sh script a job runs in the guest: one boot per job, the commands in
 * order. `onerror fail` stops at the first failing command and exits with its
 * status; `onerror ignore` notes the failure on stderr and goes on. Reaching the
 * end means success (exit 0). Messages go to the script's own stderr, which
 * redirects of the commands never touch.
 */
export function jobScript(prog: JobProgram, ctx: ScriptContext, place: ScriptPlace = 'beside'): string {
  const lines = [
    `# vmwu job script: experiment ${escapeControlChars(ctx.experiment).replace(/\s/g, '_')}, job ${ctx.job}, attempt ${ctx.attempt} (generated; see docs/sweeps.md)`,
    // In the work dir, removed before any command runs, so no command sees it and it is not collected as an output.
    ...(place === 'work' ? ['rm -f -- "$0"'] : []),
    `export VMWU_EXPERIMENT=${shellQuote(ctx.experiment)} VMWU_JOB=${shellQuote(String(ctx.job))} VMWU_ATTEMPT=${shellQuote(String(ctx.attempt))}`,
  ];
  for (const s of prog.steps) {
    lines.push(s.shell, 'vmwu_rc=$?');
    if (s.onerror === 'fail') {
      lines.push(`if [ "$vmwu_rc" -ne 0 ]; then printf 'vmwu: command %s failed with status %s: %s\\n' ${s.n} "$vmwu_rc" ${shellQuote(s.label)} >&2; exit "$vmwu_rc"; fi`);
    } else {
      lines.push(`if [ "$vmwu_rc" -ne 0 ]; then printf 'vmwu: command %s failed with status %s (onerror ignore: going on): %s\\n' ${s.n} "$vmwu_rc" ${shellQuote(s.label)} >&2; fi`);
    }
  }
  lines.push('exit 0', '');
  const text = lines.join('\n');
  if (text.length > SCRIPT_MAX_CHARS) {
    throw new VmwuError('PLAN_SCRIPT', `job ${ctx.job}: its commands make a job script of ${text.length} characters, over ${SCRIPT_MAX_CHARS}`, 'give the commands fewer or shorter words, or put them in a script the plan copies in');
  }
  return text;
}
