import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { isVmwuError } from '../../src/errors.js';
import { cacheMaxSetting } from '../../src/run/node-cache.js';

test('cache.max in config.yaml caps the node cache; $VMWU_CACHE_MAX wins over it', async () => {
  const store = mkdtempSync(join(tmpdir(), 'vmwu-config-'));
  try {
    assert.equal((await loadConfig(store)).cacheMax, undefined);
    assert.deepEqual(await cacheMaxSetting(store, {}), {});
    writeFileSync(join(store, 'config.yaml'), 'cache:\n  max: 20G\n');
    assert.deepEqual((await loadConfig(store)).cacheMax, { bytes: 20 * 1024 ** 3 });
    assert.deepEqual(await cacheMaxSetting(store, {}), { max: { bytes: 20 * 1024 ** 3 }, from: 'config.yaml cache.max' });
    assert.deepEqual(await cacheMaxSetting(store, { VMWU_CACHE_MAX: '5%' }), { max: { share: 0.05 }, from: '$VMWU_CACHE_MAX' });
    writeFileSync(join(store, 'config.yaml'), 'cache: {max: 15%}\n');
    assert.deepEqual((await loadConfig(store)).cacheMax, { share: 0.15 });
    writeFileSync(join(store, 'config.yaml'), 'cache:\n  max: plenty\n');
    await assert.rejects(loadConfig(store), (e: unknown) => isVmwuError(e) && /config\.yaml:2: cache\.max: "plenty" is not a size/.test(e.message));
    writeFileSync(join(store, 'config.yaml'), 'cache:\n  size: 1G\n');
    await assert.rejects(loadConfig(store), (e: unknown) => isVmwuError(e) && e.code === 'BAD_CONFIG' && /cache: \{max: 20G or 10%\}/.test(e.hint ?? ''));
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
});
