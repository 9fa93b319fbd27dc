import { spawn } from 'node:child_process';
import { VmwuError } from '../errors.js';
import { runTool } from '../image/tool.js';

/**
 * e2fsprogs on an image's root filesystem, rootless: `mke2fs` for the first layer,
 * `debugfs -w` to apply a layer's script, `e2fsck -p` to settle what debugfs leaves to it
 * (hard-link counts). All three run with one fixed clock and the layer's own UUID, so
 * the same image converts to the same bytes on every host.
 */

const HINT = 'install e2fsprogs (Debian package e2fsprogs)';
/** e2fsprogs' own switches for a fixed clock: mke2fs and debugfs stamp the superblock and every inode, e2fsck its last check. */
const FIXED_TIME = { ...process.env, E2FSPROGS_FAKE_TIME: '1', E2FSCK_TIME: '1' };

/** An empty ext4 without a journal (every instance's root is a throw-away overlay), owned by root. */
export async function makeEmptyExt4(image: string, bytes: number, uuid: string): Promise<void> {
  await runTool('mke2fs', ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-L', 'vmwu-root', '-U', uuid,
    '-E', `root_owner=0:0,hash_seed=${uuid}`, image, `${Math.ceil(bytes / 1024)}k`], { hint: HINT, env: FIXED_TIME });
}

/**
 * Runs a debugfs script against `image`. debugfs reports a failed command on
 * stderr and exits 0, so every line there but its banner is an error.
 */
export function runDebugfs(image: string, script: string, layer: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('debugfs', ['-w', '-f', script, image], { stdio: ['ignore', 'ignore', 'pipe'], env: FIXED_TIME });
    const err: Buffer[] = [];
    let errBytes = 0;
    child.stderr.on('data', (d: Buffer) => { if (errBytes < 65536) { err.push(d); errBytes += d.length; } });
    child.on('error', () => reject(new VmwuError('TOOL_MISSING', 'cannot run debugfs: not installed', HINT)));
    child.on('close', (code) => {
      const problems = Buffer.concat(err).toString('utf8').split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l));
      if (code === 0 && problems.length === 0) return resolve();
      const full = problems.some((l) => /Could not allocate|No free space|inode table|allocate block/i.test(l));
      reject(full
        ? new VmwuError('IMAGE_TOO_BIG', `${layer} does not fit in the base's root filesystem: ${problems[0]}`, 'the image is larger than vmwu\'s image root (see docs/images.md)')
        : new VmwuError('IMAGE_CONVERT', `${layer} could not be applied (debugfs): ${problems.slice(0, 3).join('; ') || `exit ${code}`}`, 'the image holds something vmwu cannot write into ext4; nothing was registered'));
    });
  });
}

/** `e2fsck -fp`: exit 1 means it fixed what debugfs leaves (link counts); 4 and up, a filesystem it could not. */
export async function settleExt4(image: string, layer: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('e2fsck', ['-fp', image], { stdio: ['ignore', 'ignore', 'pipe'], env: FIXED_TIME });
    const err: Buffer[] = [];
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', () => reject(new VmwuError('TOOL_MISSING', 'cannot run e2fsck: not installed', HINT)));
    child.on('close', (code) => (code !== null && code < 4 ? resolve()
      : reject(new VmwuError('IMAGE_CONVERT', `${layer}: the filesystem it made does not check (e2fsck exit ${code}): ${Buffer.concat(err).toString().trim().split('\n').slice(-2).join('; ')}`))));
  });
}
