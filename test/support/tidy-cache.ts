import { existsSync } from 'node:fs';
import { cacheMaxSetting, NodeCache } from '../../src/run/node-cache.js';
import { nodeDirs } from '../../src/run/node-dirs.js';

/**
 * Run after the suite (scripts/test.sh): the templates of the stores the tests
 * made and removed leave this user's node cache (src/run/node-cache.ts: an
 * eviction removes every template whose stores are all gone), and the cache is
 * trimmed to its cap. What a running job holds stays.
 */
const home = process.env.VMWU_TEST_HOME ?? process.env.VMWU_HOME;
if (home) {
  const { cache } = nodeDirs(undefined, home);
  if (existsSync(cache)) {
    const over = await NodeCache.at(cache).makeRoom(undefined, 0, await cacheMaxSetting(home));
    if (over) process.stderr.write(`tidy-cache: ${over}\n`);
  }
}
