import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePrivateDir } from './private-dir.js';
import { identityState, selfIdentity } from './process-identity.js';
import { WORK_DIR_OWNER } from './temp-files.js';

/**
 * Scratch space in memory (/dev/shm) for short-lived files, when the host has room:
 * private to this user, named with its writer like the store's work dirs, and
 * removed on the next use when that writer died, since nothing else ever empties it.
 */

const SHM = '/dev/shm';
const prefix = () => `vmwu-${process.getuid?.() ?? 'u'}-stage-`;

/**
 * A stage is removed by another process only once it is this old too: a stage
 * lives for one image's conversion, and a writer judged dead by mistake (one
 * whose pid the judge cannot see) must not lose the stage it is writing into.
 */
export const STAGE_GRACE_MS = 60 * 60_000;

/** Removes this user's stages whose writer is gone (this host's processes only: /dev/shm is the host's own). */
export function removeDeadStages(shm = SHM, nowMs = Date.now()): void {
  for (const name of readdirSync(shm).filter((n) => n.startsWith(prefix()))) {
    const dir = join(shm, name);
    let owner: string;
    try {
      owner = readFileSync(join(dir, WORK_DIR_OWNER), 'utf8');
      if (nowMs - statSync(dir).mtimeMs < STAGE_GRACE_MS) continue;
    } catch {
      // No owner yet: a stage being made, or one whose maker died before writing it; left for a later look.
      continue;
    }
    if (identityState(owner) === 'dead') rmSync(dir, { recursive: true, force: true });
  }
}

/** A private directory in memory with room for `bytes`, or undefined (no /dev/shm, too little room): use the disk. */
export function openMemoryStage(bytes: number): string | undefined {
  try {
    const fs = statfsSync(SHM);
    if (fs.bavail * fs.bsize <= bytes) return undefined;
    removeDeadStages();
    const dir = join(SHM, `${prefix()}${randomBytes(6).toString('hex')}`);
    ensurePrivateDir(dir);
    writeFileSync(join(dir, WORK_DIR_OWNER), selfIdentity(), { mode: 0o600, flag: 'wx' });
    return dir;
  } catch {
    return undefined;
  }
}

export function closeMemoryStage(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
