import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { debianBase, root, testHome, tmp, vmwu } from '../support/harness.js';

/**
 * examples/hmmer, as a user runs it: Debian's hmmer in a unit, a 20,000-sequence
 * protein database attached as a dataset, a sweep of hmmsearch over five profile
 * HMMs. Every hit table must be identical, row for row, to the same search run
 * natively on this host.
 */
const example = join(root, 'examples', 'hmmer');
const HMMS = ['globins4', 'fn3', 'Pkinase', 'RRM_1', 'LuxC'];
const native = spawnSync('sh', ['-c', 'command -v hmmsearch']).status === 0;
if (!native) process.stderr.write('\n!!! SKIPPING the HMMER comparison: no hmmsearch on this host (scripts/setup.sh installs Debian\'s hmmer) !!!\n\n');

describe('examples/hmmer against native hmmsearch', { skip: !native && 'no native hmmsearch', concurrency: false, timeout: 1_500_000 }, () => {
  const dbDir = join(testHome(), 'cache', 'protdb');

  before(async () => {
    const base = await debianBase();
    assert.equal(base.code, 0, base.stderr);
    const db = spawnSync('sh', [join(example, 'get-db.sh'), dbDir], { env: { ...process.env, VMWU_HOME: testHome() }, encoding: 'utf8' });
    // A second run of the suite finds it registered: the same content under the same name is no error.
    assert.equal(db.status, 0, db.stderr);
    const b = await vmwu(['build', example]);
    assert.equal(b.code, 0, b.stderr);
  });

  test('a sweep of five hmmsearch jobs gives the native hit tables, comment lines aside', async () => {
    const name = `hmmer-${process.pid}`;
    const r = await vmwu(['sweep', join(example, 'hmmer.pln'), '--unit', 'hmmer', '--name', name, '--retries', '0']);
    assert.equal(r.code, 0, r.stderr);
    const results = join(testHome(), 'experiments', name, 'results');
    let rows = 0;
    for (const hmm of HMMS) {
      const out = tmp(`vmwu-native-${hmm}-`);
      const n = spawnSync('sh', [join(example, 'native.sh'), hmm, join(dbDir, 'DB.fasta'), out], { encoding: 'utf8' });
      assert.equal(n.status, 0, n.stderr);
      for (const table of ['hits', 'domhits']) {
        const inVm = readFileSync(join(results, `${table}-${hmm}.tsv`), 'utf8');
        assert.equal(inVm, readFileSync(join(out, `${table}.tsv`), 'utf8'), `${hmm}: ${table} identical to the native run`);
        rows += inVm.split('\n').filter(Boolean).length;
      }
    }
    assert.ok(rows > 500, `the searches found hits (${rows} rows): a comparison of empty tables proves nothing`);
  });
});
