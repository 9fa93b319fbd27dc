import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readBundle, type ReadBundleResult } from '../../../src/bundle/archive.js';
import { fixTarChecksums } from '../tar-checksums.js';
import { violated, type FuzzTarget } from '../target.js';

/**
 * A whole .vmwu bundle through the importer's reader: tar layout, manifest, unit.ovf
 * against the digest the manifest gives it, blobs into a staging directory. Besides
 * "typed errors only": nothing appears outside the staging directory, staged files are
 * named by their digest, and what is returned has been verified (every blob the manifest
 * lists is staged and hashes to its digest).
 */
let scratch: string;
const sha = (b: Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const target: FuzzTarget = {
  maxLen: 64 * 1024,
  blockSize: 512,
  dictionary: ['manifest.json', 'unit.ovf', 'blobs/sha256/', '../', 'ustar\x0000', '././@LongLink', 'path=', '00000001000\0', '0000644\0', '0000444\0'],
  setup(dir) {
    scratch = dir;
  },
  async run(data) {
    const dir = await mkdtemp(join(scratch, 'b-'));
    try {
      const file = join(dir, 'unit.vmwu');
      const staging = join(dir, 'staging');
      const sentinel = join(dir, 'sentinel');
      await mkdir(staging);
      await mkdir(sentinel);
      await writeFile(file, fixTarChecksums(data));
      let result: ReadBundleResult | undefined;
      let error: unknown;
      try {
        result = await readBundle({ file, staging });
      } catch (e) {
        error = e;
      }
      const beside = (await readdir(dir)).sort().join(' ');
      if (beside !== 'sentinel staging unit.vmwu') violated(`the reader left ${beside} beside the staging dir`);
      if ((await readdir(sentinel)).length) violated('the reader wrote into the sentinel directory');
      for (const name of await readdir(staging)) {
        if (!/^[0-9a-f]{64}$/.test(name) || !(await lstat(join(staging, name))).isFile()) violated(`staged ${JSON.stringify(name)}, not a blob named by its digest`);
      }
      if (error !== undefined) throw error;
      const r = result!;
      for (const [digest, path] of r.staged) {
        if (sha(await readFile(path)) !== digest) violated(`staged blob ${digest} does not hash to its digest`);
      }
      if (r.staged.size !== r.manifest.blobs.length) violated(`${r.staged.size} blobs staged, the manifest lists ${r.manifest.blobs.length}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
export default target;
