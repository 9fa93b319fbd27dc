import { createInterface } from 'node:readline/promises';
import { displayValue } from '../control-chars.js';
import { VmwuError } from '../errors.js';
import { storeRoot } from '../store/home.js';
import { breakLease, describeHolder, leaseTtlMs, readLeaseHolder, refuseLiveHolder, type LeaseHolder } from '../store/lease.js';
import { printJson } from './output.js';

/** Freeing a store that a dead machine holds (`vmwu doctor --break-lease`), once the user has confirmed that the holder is gone. */

/**
 * `vmwu doctor --break-lease`: ends the store lease of a machine that died holding
 * it. The store is not opened: its lease would refuse that. The user confirms by
 * typing the holder's host name; --yes is for scripts.
 */
export async function breakLeaseCommand(o: { json?: boolean; yes?: boolean }): Promise<void> {
  const root = storeRoot();
  const holder = readLeaseHolder(root);
  if (holder) {
    refuseLiveHolder(root, holder);
    if (!o.yes) await confirm(root, holder);
  }
  // Checked again under the lease's lock: a holder that renewed meanwhile lives.
  const broken = holder && breakLease(root, holder);
  if (o.json) printJson({ broken: Boolean(broken), holder: broken ? { host: broken.host, domain: broken.domain, since: broken.since, heartbeat: broken.heartbeat, lastSeenMs: broken.lastSeenMs } : null });
  else if (broken) process.stdout.write(`broke the lease of ${describeHolder(broken)}: another machine may use the store ${root} now\n`);
  else process.stdout.write(`the store ${root} has no lease${holder ? ' any more' : ''}: nothing to break\n`);
}

async function confirm(root: string, h: LeaseHolder): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new VmwuError('NOT_CONFIRMED', `breaking the lease of ${describeHolder(h)} on the store ${root} needs a confirmation, and there is no terminal to ask on`,
      'run it in a terminal, or add --yes if you are sure that machine is dead (powered off, or no vmwu running there)');
  }
  const lines = [`the store ${root} is leased by ${describeHolder(h)}.`];
  if (h.recent) {
    lines.push(`WARNING: it was seen less than ${Math.round(leaseTtlMs() / 1000)} s ago: it may well be alive. If it is, breaking its lease lets two machines write the database at once, and writes are lost. Go on only if that machine is powered off or runs no vmwu.`);
  }
  lines.push('Breaking the lease lets another machine use the store at once.');
  process.stderr.write(lines.join('\n') + '\n');
  const answer = await ask(`type the holder's host name (${displayValue(h.host)}) to break its lease: `);
  if (answer?.trim() !== h.host) {
    throw new VmwuError('NOT_CONFIRMED', `the lease was not broken: ${answer === null ? 'no answer' : `${displayValue(answer.trim())} is not the holder's host name`}`,
      `type ${displayValue(h.host)} exactly to break it, or add --yes if you are sure that machine is dead`);
  }
}

/** A line typed on the terminal, or null when the user pressed Ctrl-C or Ctrl-D. */
async function ask(question: string): Promise<string | null> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const abort = new AbortController();
  rl.on('SIGINT', () => abort.abort());
  rl.on('close', () => abort.abort());
  try {
    return await rl.question(question, { signal: abort.signal });
  } catch {
    return null;
  } finally {
    rl.close();
  }
}
