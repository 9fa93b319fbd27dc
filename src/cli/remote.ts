import { isVmwuError, VmwuError } from '../errors.js';
import { remoteCheckpoint, remoteClean, remoteFetch, remoteReceiveCheckpoint, remoteSendCheckpoint, remoteGc, remoteHave, remoteInfo, remoteKill, remoteReceive, remoteRegisterBase, remoteRun } from '../executors/ssh/remote.js';
import { ERROR_MARK } from '../executors/ssh/protocol.js';
import type { Base } from '../store/bases.js';
import type { Digest } from '../store/blobs.js';
import { hexOf } from '../store/blobs.js';
import type { Store } from '../store/store.js';
import { withStore } from './context.js';
import { EXIT_VMWU_ERROR } from './output.js';

/**
 * `vmwu remote …` (hidden): what the SSH executor runs on a pool host. Replies
 * are JSON on stdout; a failure ends with ERROR_MARK + JSON on stderr and exit
 * code 125, so the submitter reports the host's own error.
 */

async function remote(fn: (store: Store) => Promise<unknown>): Promise<void> {
  try {
    const reply = await withStore(fn);
    if (reply !== undefined) process.stdout.write(JSON.stringify(reply) + '\n');
  } catch (e) {
    const body = isVmwuError(e) ? { code: e.code, message: e.message, hint: e.hint } : { code: 'INTERNAL', message: String((e as Error)?.message ?? e) };
    process.stderr.write(`\n${ERROR_MARK}${JSON.stringify(body)}\n`);
    process.exitCode = EXIT_VMWU_ERROR;
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function digests(list: string[]): Digest[] {
  for (const d of list) hexOf(d);
  return list as Digest[];
}

function count(v: string, what: string): number {
  if (!/^\d+$/.test(v)) throw new VmwuError('BAD_VALUE', `${what} ${v}: expected a whole number`);
  return Number(v);
}

export const remoteCommands = {
  info: () => remote((s) => remoteInfo(s)),
  have: (list: string[]) => remote((s) => remoteHave(s, digests(list))),
  receive: (digest: string, o: { size: string; offset: string }) =>
    remote((s) => remoteReceive(s, digests([digest])[0]!, count(o.size, '--size'), count(o.offset, '--offset'), process.stdin)),
  registerBase: () => remote(async (s) => remoteRegisterBase(s, JSON.parse(await readStdin()) as Base)),
  run: (id: string) => remote(async (s) => {
    const ac = new AbortController();
    // sshd hangs up (SIGHUP) when the submitter's connection ends; `remote kill` sends SIGTERM.
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => ac.abort());
    // A gone submitter shows as a broken pipe: stop the VM rather than die with it running.
    process.stdout.on('error', () => ac.abort());
    process.stderr.on('error', () => ac.abort());
    // stdout is the guest's: the run id reaches the submitter in the fetched run.json.
    await remoteRun(s, id, process.stdin, process.stdout, process.stderr, ac.signal);
    return undefined;
  }),
  fetch: (id: string) => remote(async (s) => {
    await remoteFetch(s, id, process.stdout);
    return undefined;
  }),
  checkpoint: (id: string, o: { stop?: boolean }) => remote((s) => remoteCheckpoint(s, id, Boolean(o.stop))),
  fetchCheckpoint: (id: string, ck: string) => remote(async (s) => {
    await remoteSendCheckpoint(s, id, ck, process.stdout);
    return undefined;
  }),
  receiveCheckpoint: (id: string) => remote((s) => remoteReceiveCheckpoint(s, id, process.stdin)),
  kill: (id: string) => remote(async (s) => ({ killed: remoteKill(s, id) })),
  clean: (id: string) => remote(async (s) => {
    await remoteClean(s, id);
    return { cleaned: id };
  }),
  gc: () => remote(async (s) => ({ removed: await remoteGc(s) })),
};
