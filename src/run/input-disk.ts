import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack, type Pack } from 'tar-stream';
import { VmwuError } from '../errors.js';
import { InputLayout } from '../../guest/protocol.js';

/**
 * The input disk: a tar stream written straight onto a raw image, which the guest
 * unpacks with `tar -xf /dev/vdX`. No filesystem to build, no root needed.
 */

/** Adds a file, directory (recursively) or symlink to a tar pack under `name`. */
export async function addEntry(pack: Pack, name: string, path: string): Promise<void> {
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

/** A host path placed in the work dir under its base name, or under `name`. */
export type InputEntry = string | { path: string; name: string };

export async function writeInputDisk(image: string, files: { env: string; cmd: string; cmdAfterCut?: string; stdin?: string; script?: string }, inputs: InputEntry[]): Promise<void> {
  const seen = new Set<string>();
  const entries = inputs.map((i) => (typeof i === 'string' ? { path: i, name: basename(i) } : i));
  for (const { path, name } of entries) {
    if (seen.has(name)) throw new VmwuError('BAD_INPUT', `two inputs are named "${name}"`, 'inputs land in the work dir by their base name; rename one');
    seen.add(name);
    try {
      await lstat(path);
    } catch {
      throw new VmwuError('BAD_INPUT', `--input ${path}: no such file or directory`);
    }
  }
  if (files.stdin !== undefined) {
    const st = await lstat(files.stdin).catch(() => undefined);
    if (!st?.isFile()) throw new VmwuError('BAD_INPUT', `--stdin ${files.stdin}: ${st ? 'not a file' : 'no such file'}`, 'give the file the job reads on its standard input');
  }
  const pack = tarPack();
  const writing = pipeline(pack, createWriteStream(image));
  pack.entry({ name: InputLayout.env, mode: 0o644 }, files.env);
  pack.entry({ name: InputLayout.cmd, mode: 0o755 }, files.cmd);
  if (files.cmdAfterCut !== undefined) pack.entry({ name: InputLayout.cmdAfterCut, mode: 0o755 }, files.cmdAfterCut);
  if (files.script !== undefined) pack.entry({ name: InputLayout.script, mode: 0o644 }, files.script);
  if (files.stdin !== undefined) await addEntry(pack, InputLayout.stdin, files.stdin);
  // No entry for inputs/ itself: the guest links it to the work dir, and a tar given the directory replaces the link (guest/agent).
  for (const { path, name } of entries) await addEntry(pack, `${InputLayout.inputs}/${name}`, path);
  pack.finalize();
  await writing;
}
