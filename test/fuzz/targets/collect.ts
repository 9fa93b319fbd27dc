import { lstat, mkdir, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { collectOutputs, type CollectResult } from '../../../src/run/collect.js';
import { fixTarChecksums } from '../tar-checksums.js';
import { violated, type FuzzTarget } from '../target.js';

/**
 * The output collector, on a guest-written disk image, into a fresh directory each time.
 * Besides "typed errors only": nothing appears beside the out dir (a sentinel directory
 * next to it stays empty), a refused archive leaves the out dir empty, and what a
 * collected one leaves is plain files, directories and links that resolve inside work/,
 * no larger than the cap, with no set-id or group/other write bits.
 */
const MAX_BYTES = 64 * 1024;
let scratch: string;

const within = (root: string, p: string) => {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
};

async function checkTree(work: string): Promise<number> {
  let bytes = 0;
  const walk = async (d: string) => {
    for (const name of await readdir(d)) {
      const p = join(d, name);
      const st = await lstat(p);
      // A link's own mode is always 777 on Linux and is never used.
      if (!st.isSymbolicLink() && st.mode & 0o7022) violated(`${relative(work, p)} has mode ${(st.mode & 0o7777).toString(8)}`);
      if (st.isSymbolicLink()) {
        const to = await readlink(p);
        if (to.startsWith('/') || !within(work, resolve(dirname(p), to))) violated(`link ${relative(work, p)} -> ${to} leaves work/`);
      } else if (st.isDirectory()) {
        await walk(p);
      } else if (st.isFile()) {
        if (st.nlink !== 1) violated(`${relative(work, p)} has ${st.nlink} links`);
        bytes += st.size;
      } else {
        violated(`${relative(work, p)} is not a file, directory or link`);
      }
    }
  };
  await walk(work);
  return bytes;
}

const target: FuzzTarget = {
  maxLen: 64 * 1024,
  blockSize: 512,
  dictionary: ['meta/', 'work/', 'meta/exit_code', 'work/a/b.txt', './', '../', '..', '/', 'ustar\x0000', 'ustar  \0', '././@LongLink',
    'path=', 'linkpath=', 'size=', '30 path=work/x\n', '0000644\0', '0000755\0', '0004755\0', '00000001000\0', '\x80\0\0\0\0\0\0\0\xff\xff\xff\xff'],
  setup(dir) {
    scratch = dir;
  },
  async run(data) {
    const dir = await mkdtemp(join(scratch, 'c-'));
    try {
      const source = join(dir, 'disk.raw');
      const outDir = join(dir, 'out');
      const sentinel = join(dir, 'sentinel');
      await mkdir(sentinel);
      await writeFile(source, fixTarChecksums(data));
      // Both ways the runner calls it: everything, and only what keep globs select.
      const keep = data.length % 2 ? undefined : ['*.txt', 'd/**'];
      let result: CollectResult | undefined;
      let error: unknown;
      try {
        result = await collectOutputs({ source, outDir, maxBytes: MAX_BYTES, maxEntries: 300, keep });
      } catch (e) {
        error = e;
      }
      const beside = (await readdir(dir)).sort().join(' ');
      if (beside !== 'disk.raw out sentinel') violated(`collect left ${beside} beside the out dir`);
      if ((await readdir(sentinel)).length) violated('collect wrote into the sentinel directory');
      if (error !== undefined) {
        const left = await readdir(outDir);
        if (left.length) violated(`a refused archive left ${left.join(' ')} in the out dir`);
        throw error;
      }
      const left = (await readdir(outDir)).join(' ');
      if (left !== 'work') violated(`the out dir holds ${left}, not just work/`);
      const bytes = await checkTree(join(outDir, 'work'));
      if (bytes > MAX_BYTES || result!.bytes > MAX_BYTES) violated(`${bytes} bytes written, over the ${MAX_BYTES} cap`);
      for (const f of result!.files) {
        const st = await lstat(join(outDir, f.path)).catch(() => null);
        if (!st?.isFile() || st.size !== f.size) violated(`reported file ${f.path} (${f.size} bytes) is not on disk as reported`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
};
export default target;
