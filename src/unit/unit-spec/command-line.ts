/** The shell-like splitter that turns a spec's `run:` command line into argv, without a shell. */

/** Why a command line was refused, where (`index` into the line), and what to write instead. */
export class CommandLineError extends Error {
  readonly index: number;
  readonly hint: string;
  constructor(message: string, index: number, hint: string) {
    super(message);
    this.index = index;
    this.hint = hint;
  }
}

const SHELL_HINT = 'run is not given to a shell: quote the character to pass it as an argument, or write run: [sh, -c, "..."]';

/**
 * Splits a command line into argv the way sh would, minus every expansion: quotes and
 * backslashes group and escape, `${x}` stays literal for per-run substitution. Unquoted
 * operators (`>`, `|`, `;`, ...) and line breaks are refused rather than passed on as
 * arguments, since whoever wrote them expected a shell.
 */
export function splitCommandLine(line: string): string[] {
  const argv: string[] = [];
  let word = '';
  let inWord = false;
  const endWord = () => {
    if (inWord) argv.push(word);
    word = '';
    inWord = false;
  };
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      endWord();
      i++;
    } else if (c === '\n' || c === '\r') {
      // A `|` block scalar ends in a newline; only a second line is a problem.
      if (line.slice(i).trim() !== '') {
        throw new CommandLineError('has more than one line', i,
          'run is one command: end a line with \\ to continue it, or put a script in a file (or setup) and run that');
      }
      break;
    } else if (c === '\\') {
      const next = line[i + 1];
      if (next === undefined) throw new CommandLineError('ends with a lone backslash', i, 'remove it, or write \\\\ for a backslash');
      if (next !== '\n') {
        word += next;
        inWord = true;
      }
      i += 2;
    } else if (c === "'") {
      const close = line.indexOf("'", i + 1);
      if (close < 0) throw new CommandLineError("has an unterminated ' quote", i, "close it with another '");
      word += line.slice(i + 1, close);
      inWord = true;
      i = close + 1;
    } else if (c === '"') {
      const open = i++;
      inWord = true;
      for (;;) {
        if (i >= line.length) throw new CommandLineError('has an unterminated " quote', open, 'close it with another "');
        const d = line[i]!;
        if (d === '"') {
          i++;
          break;
        }
        // As in sh: inside double quotes a backslash escapes only these.
        if (d === '\\' && i + 1 < line.length && '\\"$`\n'.includes(line[i + 1]!)) {
          if (line[i + 1] !== '\n') word += line[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
    } else if ('|&;<>()`'.includes(c) || (c === '$' && line[i + 1] === '(')) {
      throw new CommandLineError(`\`${c === '$' ? '$(' : c}\` is shell syntax`, i, SHELL_HINT);
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  endWord();
  return argv;
}
