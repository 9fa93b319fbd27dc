import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * test/fixtures in the source tree. Tests run compiled from dist/test, where
 * non-TypeScript fixtures are not copied, so walk up to the repository.
 */
function find(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'test', 'fixtures'))) {
    const up = dirname(d);
    if (up === d) throw new Error('cannot find test/fixtures');
    d = up;
  }
  return join(d, 'test', 'fixtures');
}

export const fixturesDir = find();
export const repoRoot = dirname(dirname(fixturesDir));
