import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack, type Pack } from 'tar-stream';
import { VmwuError } from '../errors.js';
import { InputLayout } from '../../guest/protocol.js';

async function addEntry(pack: Pack, name: string, path: string): Promise<void> {
  const st = await lstat(path);
  if (st.isDirectory()) {
    pack.entry({ name, type: 'directory', mode: st.mode & 0o777 });
    for (const child of (await readdir(path)).sort()) await addEntry(pack, `${name}/${child}`, join(path, child));
  } else if (st.isSymbolicLink()) {
    pack.entry({ name, type: 'symlink', linkname: await readlink(path) });
  } else if (st.isFile()) {
    await new Promise<void>((resolve, reject) => {
      const sink = pack.entry({ name, size: st.size, mode: st.mode & 0o777 }, (e) => (e ? reject(e) : resolve()));
      createReadStream(path).on('error', reject).pipe(sink);
    });
  } else {
    throw new VmwuError('BAD_INPUT', `--input ${path}: not a regular file or directory`);
  }
}

/**
 * The input disk: a tar stream written straight onto a raw image, which the guest
 * unpacks with `tar -xf /dev/vdX`. No filesystem to build, no root needed.
 */
export async function writeInputDisk(image: string, files: { env: string; cmd: string }, inputs: string[]): Promise<void> {
  const seen = new Set<string>();
  for (const i of inputs) {
    const b = basename(i);
    if (seen.has(b)) throw new VmwuError('BAD_INPUT', `two inputs are named "${b}"`, 'inputs land in the work dir by their base name; rename one');
    seen.add(b);
    try {
      await lstat(i);
    } catch {
      throw new VmwuError('BAD_INPUT', `--input ${i}: no such file or directory`);
    }
  }
  const pack = tarPack();
  const writing = pipeline(pack, createWriteStream(image));
  pack.entry({ name: InputLayout.env, mode: 0o644 }, files.env);
  pack.entry({ name: InputLayout.cmd, mode: 0o755 }, files.cmd);
  pack.entry({ name: InputLayout.inputs, type: 'directory', mode: 0o755 });
  for (const i of inputs) await addEntry(pack, `${InputLayout.inputs}/${basename(i)}`, i);
  pack.finalize();
  await writing;
}
