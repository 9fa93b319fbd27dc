import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { VmwuError } from '../errors.js';

/** The dashboard's access token: drawn at random, or refused when a given one is weak, and compared in constant time. */

/** The shortest access token accepted: 16 characters of a random base64url token carry 96 bits. */
export const MIN_TOKEN_LENGTH = 16;
/** Fewer distinct characters than this is a pattern (`aaaa…`, `abab…`, `0000…`), not a secret. */
const MIN_DISTINCT = 8;

const HINT = 'leave VMWU_SERVE_TOKEN unset to draw a random token at each start, or set it to a long random one, e.g. `openssl rand -base64 24`';

/** A fresh random access token (192 bits). */
export function drawToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * Refuses a token that would leave the dashboard open or guessable: not a string,
 * empty, shorter than MIN_TOKEN_LENGTH, with too few distinct characters, or with
 * characters an HTTP header, cookie or URL would alter (whitespace, control, non-ASCII),
 * so that the token the user gives is the one every client can send. `source` names
 * where it came from (VMWU_SERVE_TOKEN, options.token) for the message.
 */
export function checkToken(token: unknown, source: string): string {
  if (typeof token !== 'string') throw new VmwuError('WEAK_TOKEN', `${source}: the access token must be a string`, HINT);
  if (token === '') throw new VmwuError('WEAK_TOKEN', `${source} is empty: an empty access token would let anyone in`, HINT);
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new VmwuError('WEAK_TOKEN', `${source} has ${token.length} characters; an access token needs at least ${MIN_TOKEN_LENGTH}`, HINT);
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new VmwuError('WEAK_TOKEN', `${source} holds whitespace, control or non-ASCII characters, which HTTP clients alter or refuse`, HINT);
  }
  if (new Set(token).size < MIN_DISTINCT) {
    throw new VmwuError('WEAK_TOKEN', `${source} uses only ${new Set(token).size} distinct characters: too easy to guess`, HINT);
  }
  return token;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * Whether a presented secret equals the expected one, in time independent of where
 * they differ and of their lengths (both are hashed to 32 bytes first, so
 * timingSafeEqual never sees a length mismatch). An empty or missing candidate never
 * matches, whatever `expected` is.
 */
export function secretMatches(candidate: string | undefined, expected: string): boolean {
  if (candidate === undefined || candidate === '' || expected === '') return false;
  return timingSafeEqual(digest(candidate), digest(expected));
}
