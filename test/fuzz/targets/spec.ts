import { mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { isVmwuError } from '../../../src/errors.js';
import { jobEnvScript } from '../../../src/run/command.js';
import { buildKeyMaterial } from '../../../src/unit/unit-spec/build-key.js';
import { loadUnitSpec } from '../../../src/unit/unit-spec/load.js';
import type { UnitSpec } from '../../../src/unit/unit-spec/schema.js';
import { displayPath, LocatedError } from '../../../src/unit/unit-spec/yaml-location.js';
import { violated, type FuzzTarget } from '../target.js';

/**
 * vmwu.yaml, read from a real unit directory (files, a subdirectory, a link leading out
 * of it). Besides "typed errors only": a located error points inside the file, every
 * line of its message starts with the file name and holds no control character (a
 * terminal would act on an escape sequence quoted from the file), and a spec that loads has its files
 * inside the directory and can be used (build key, job environment).
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
let dir: string;
let file: string;

const target: FuzzTarget = {
  maxLen: 4096,
  dictionary: [
    'name: ', 'version: ', 'base: ', 'packages: ', 'files: ', 'from: ', 'to: ', 'setup: ', 'run: ', 'params: ', 'outputs: ', 'resources: ',
    'memory: ', 'cpus: ', 'timeout: ', 'network: ', 'arch: ', 'os: ', 'tiny', 'debian:bookworm', './src', 'data/input.txt', 'out', '/app', '/',
    '..', '${n}', '${', '- ', '[', ']', '{', '}', ': ', '|\n', '>-\n', '&a ', '*a', '<<: ', '!!str ', '!tag ', '---\n', '...\n', '? ', '"', "'",
    '\\', '#', 'true', 'null', '~', '0x1f', '1.5G', '10m', '1h30m', '__proto__', 'VMWU_X', '*.ppm', '\t', '\r\n',
  ],
  setup(scratch) {
    dir = join(scratch, 'unit');
    mkdirSync(join(dir, 'src'), { recursive: true });
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'src', 'main.c'), 'int main(void) { return 0; }\n');
    writeFileSync(join(dir, 'data', 'input.txt'), 'x\n');
    symlinkSync('/etc', join(dir, 'out'));
    symlinkSync('src', join(dir, 'in'));
    file = join(dir, 'vmwu.yaml');
  },
  run(data) {
    writeFileSync(file, data);
    let spec: UnitSpec;
    try {
      spec = loadUnitSpec(dir);
    } catch (e) {
      if (e instanceof LocatedError) {
        const lines = data.toString('utf8').split('\n').length;
        for (const p of e.problems) {
          if (!(p.pos.line >= 1 && p.pos.col >= 1 && p.pos.line <= lines + 1)) violated(`a problem points outside the file (${p.pos.line}:${p.pos.col}, ${lines} lines): ${p.message}`);
        }
        const shown = displayPath(file);
        for (const l of e.message.split('\n')) {
          if (!l.startsWith(`${shown}:`)) violated(`a spec error line does not start with the file name: ${JSON.stringify(l)}`);
          if (CONTROL.test(l)) violated(`a spec error line holds a control character: ${JSON.stringify(l)}`);
        }
      } else if (isVmwuError(e)) {
        violated(`a spec error is not located in the file: ${e.code} ${e.message}`);
      }
      throw e;
    }
    const realDir = realpathSync(dir);
    for (const f of spec.files) {
      const rel = relative(realDir, realpathSync(f.from));
      if (rel.startsWith('..') || rel.startsWith('/')) violated(`files[].from ${f.from} is outside the unit directory`);
    }
    buildKeyMaterial(spec);
    jobEnvScript(Object.fromEntries(Object.entries(spec.params).map(([k, p]) => [k, p.default])), {});
  },
};
export default target;
