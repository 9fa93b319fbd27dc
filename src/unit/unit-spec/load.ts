import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { VmwuError } from '../../errors.js';
import { buildSpec } from './fields.js';
import { SPEC_FILE, SpecSchema, TOP_HINT, type UnitSpec } from './schema.js';
import { displayPath, LocatedError, YamlSource, type Problem } from './yaml-location.js';
import { describeValue, issueProblems } from './zod-problems.js';

/** Reading a vmwu.yaml into a UnitSpec: YAML syntax, then the schema, then each field's rules, every problem located in the file. */

/** Reads `dir/vmwu.yaml`, or the file itself when given one. */
export function loadUnitSpec(pathOrDir: string): UnitSpec {
  let file = resolve(pathOrDir);
  try {
    if (statSync(file).isDirectory()) file = join(file, SPEC_FILE);
  } catch {
    throw new VmwuError('NO_SPEC', `${displayPath(file)}: no such file or directory`, `give a unit directory or its ${SPEC_FILE}`);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new VmwuError('NO_SPEC', `${displayPath(file)}: no such file`,
        `a unit directory holds a ${SPEC_FILE}; see examples/mandelbrot/${SPEC_FILE}`);
    }
    throw new VmwuError('NO_SPEC', `${displayPath(file)}: cannot read it (${code ?? String(e)})`, undefined, { cause: e });
  }
  return parseUnitSpec(text, file);
}

/** Validates a spec's text. The filesystem is only touched to check that `files[].from` exist and stay inside the directory. */
export function parseUnitSpec(text: string, file: string): UnitSpec {
  const absFile = resolve(file);
  const shown = displayPath(absFile);
  const src = new YamlSource(text, absFile);

  const syntax = src.parseProblems();
  if (syntax.length) throw new LocatedError('SPEC_SYNTAX', shown, syntax);

  const root = src.doc.contents;
  if (root === null) {
    throw new LocatedError('BAD_SPEC', shown, [{ pos: { line: 1, col: 1 }, path: [], message: 'the spec is empty', hint: TOP_HINT }]);
  }
  let data: unknown;
  try {
    data = src.doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new LocatedError('BAD_SPEC', shown, [{ pos: { line: 1, col: 1 }, path: [], message: (e as Error).message, hint: 'avoid deeply nested aliases' }]);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new LocatedError('BAD_SPEC', shown, [{ pos: src.pos([]), path: [], message: `expected a map of fields, got ${describeValue(src, [], data)}`, hint: TOP_HINT }]);
  }

  const parsed = SpecSchema.safeParse(data);
  if (!parsed.success) {
    throw new LocatedError('BAD_SPEC', shown, parsed.error.issues.flatMap((i) => issueProblems(src, data, i, [])));
  }
  const problems: Problem[] = [];
  const spec = buildSpec(src, parsed.data, absFile, problems);
  if (problems.length) throw new LocatedError('BAD_SPEC', shown, problems);
  return spec;
}
