/**
 * Waits for every one of `work` to settle, then throws the first failure: work
 * that writes files must not go on behind the clean-up of a failed sibling.
 */
export async function allSettledOrThrow(work: (Promise<unknown> | undefined)[]): Promise<void> {
  const done = await Promise.allSettled(work);
  const failed = done.find((m): m is PromiseRejectedResult => m.status === 'rejected');
  if (failed) throw failed.reason;
}
