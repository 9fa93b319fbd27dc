import { closeSync, constants, fchmodSync, fchownSync, fstatSync, lstatSync, mkdirSync, openSync, readlinkSync, type Stats } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname } from 'node:path';
import { VmwuError } from '../errors.js';

/**
 * Directories of this user's in places other users can write (/tmp, a shared
 * scratch), made the way OpenSSH makes its agent sockets' and systemd its
 * tmpfiles: owned by the user, closed to others, opened without following
 * links, and refused, naming the path and its owner, when they are not. Another
 * user who made the directory first, or put a link in its place, gets nothing:
 * no template of theirs is run, no blob of theirs read, no chmod lands on what
 * the link points at.
 */

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

function ownerName(uid: number): string {
  try {
    if (uid === process.geteuid?.()) return userInfo().username;
  } catch {
    // no passwd entry
  }
  return `uid ${uid}`;
}

function unsafe(path: string, why: string): VmwuError {
  return new VmwuError('UNSAFE_DIR', `${path} ${why}`,
    'another user may have made it to take over vmwu\'s files: remove it if it is not yours, or set $VMWU_SCRATCH (or scratch: in config.yaml) to a directory of your own');
}

/** Opens a directory without following a link; the error names the link when there is one. */
function openDir(path: string): number {
  try {
    return openSync(path, DIR_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // O_DIRECTORY with O_NOFOLLOW says ENOTDIR for a link to a directory, ELOOP for others.
    if (code === 'ELOOP' || (code === 'ENOTDIR' && lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink())) {
      let to = '?';
      try {
        to = readlinkSync(path);
      } catch {
        // raced away
      }
      throw unsafe(path, `is a symbolic link (to ${to}), not a directory`);
    }
    if (code === 'ENOTDIR') throw unsafe(path, 'is not a directory');
    throw e;
  }
}

/** A parent others may write but that lacks the sticky bit lets them rename our directory away and put theirs in its place. */
function checkParent(path: string): void {
  const parent = dirname(path);
  const st = lstatSync(parent);
  if ((st.mode & 0o002) && !(st.mode & 0o1000)) {
    throw new VmwuError('UNSAFE_DIR', `${parent} can be written by every user and has no sticky bit: anyone could replace ${path}`,
      'set $VMWU_SCRATCH (or scratch: in config.yaml) to a directory of your own');
  }
}

/**
 * Makes `path` (its parent must exist or is made) a directory private to this
 * user, or checks that it is one: not a link, owned by this user, and neither
 * readable nor writable by anyone else (passing through, 0711, is allowed: QEMU's
 * user is let through so, src/vm/qemu-user.ts). A directory of this user's that
 * others may read or write is closed (0700). Anything else is refused.
 */
export function ensurePrivateDir(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  checkParent(path);
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const fd = openDir(path);
  try {
    const st = fstatSync(fd);
    requireOwn(path, st);
    if (st.mode & 0o066) fchmodSync(fd, 0o700);
  } finally {
    closeSync(fd);
  }
}

function requireOwn(path: string, st: Stats): void {
  const me = process.geteuid?.() ?? st.uid;
  if (st.uid !== me) throw unsafe(path, `belongs to ${ownerName(st.uid)}, not to ${ownerName(me)}`);
}

/** chmod of a directory that never follows a link. */
export function chmodDirNoFollow(path: string, mode: number): void {
  const fd = openDir(path);
  try {
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/**
 * Hands a directory of this user's to another user (root gives an instance's to
 * QEMU's user): never through a link, and only a directory this user owns (or
 * handed to that user already).
 */
export function chownDirNoFollow(path: string, uid: number, gid: number): void {
  const fd = openDir(path);
  try {
    const st = fstatSync(fd);
    if (st.uid !== uid) requireOwn(path, st);
    fchownSync(fd, uid, gid);
  } finally {
    closeSync(fd);
  }
}
