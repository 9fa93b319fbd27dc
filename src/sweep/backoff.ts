/** The wait before a failed job's next attempt: doubling with each failure up to a cap, without jitter. */

export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

export const defaultBackoff: BackoffPolicy = { baseMs: 1000, capMs: 60_000 };

/**
 * Delay before the retry that follows the `failures`-th failure: base, 2×base,
 * 4×base … capped. Deterministic (no jitter): retries of one experiment are
 * already spread out by the jobs' own run times, and tests can predict it.
 */
export function backoffMs(failures: number, policy: BackoffPolicy = defaultBackoff): number {
  if (failures <= 0) return 0;
  const exp = Math.min(failures - 1, 30);
  return Math.min(policy.capMs, policy.baseMs * 2 ** exp);
}
