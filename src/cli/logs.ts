import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { VmwuError } from '../errors.js';
import { runLogPaths } from '../run/instance.js';
import { ownerHost } from '../store/process-identity.js';
import { findRunByPrefix, getRun, listRuns, type RunRecord } from '../run/records.js';
import type { Store } from '../store/store.js';
import { withStore } from './context.js';
import { ms, printJson, table } from './output.js';
import { TerminalText } from './terminal-text.js';

/**
 * A run's logs on the terminal (`vmwu logs RUN`, followed with -f and escaped unless raw), the recent
 * runs (`vmwu runs`), and finding a run by its id's prefix.
 */

export function resolveRun(store: Store, ref: string): RunRecord {
  const exact = getRun(store.db, ref);
  if (exact) return exact;
  const found = findRunByPrefix(store.db, ref);
  if (found.length === 1) return found[0]!;
  if (!found.length) throw new VmwuError('NO_RUN', `no run ${ref}`, 'list runs with `vmwu runs`');
  throw new VmwuError('AMBIGUOUS_RUN', `run prefix ${ref} matches ${found.map((r) => r.id).join(', ')}`, 'give more characters');
}

/** Where a log goes: a stream of this process, through an escaper unless the bytes go raw. */
interface LogOut { out: NodeJS.WriteStream; text?: TerminalText }

function emit(o: LogOut, b: Buffer): void {
  const shown = o.text ? o.text.push(b) : b;
  if (shown.length) o.out.write(shown);
}

/** Copies what a file gained since `offset` to `out`; returns the new offset. */
function pump(path: string, offset: number, out: LogOut): number {
  if (!existsSync(path)) return offset;
  const size = statSync(path).size;
  if (size <= offset) return offset;
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(Math.min(size - offset, 1 << 20));
    const n = readSync(fd, buf, 0, buf.length, offset);
    emit(out, buf.subarray(0, n));
    return offset + n;
  } finally {
    closeSync(fd);
  }
}

export async function logs(ref: string, o: { follow?: boolean; console?: boolean; raw?: boolean }): Promise<void> {
  await withStore(async (store) => {
    const run = resolveRun(store, ref);
    const logs = runLogPaths(run.runDir);
    const files: [string, NodeJS.WriteStream][] = o.console
      ? [[logs.console, process.stdout]]
      : [[logs.stdout, process.stdout], [logs.stderr, process.stderr]];
    await tailFiles(files, { follow: Boolean(o.follow), raw: Boolean(o.raw) }, () => ['preparing', 'running'].includes(getRun(store.db, run.id)?.status ?? ''));
  });
}

/**
 * Prints what the files hold; with `follow`, what they gain too, for as long as the
 * writer is `active`. A guest wrote them, so they are escaped for the terminal
 * (src/cli/terminal-text.ts) unless `raw`; the files themselves stay as they are.
 */
export async function tailFiles(files: [string, NodeJS.WriteStream][], o: { follow: boolean; raw: boolean }, active: () => boolean): Promise<void> {
  const outs: LogOut[] = files.map(([, out]) => (o.raw ? { out } : { out, text: new TerminalText() }));
  const offsets = files.map(() => 0);
  const drain = () => files.forEach(([f], i) => {
    let before: number;
    do {
      before = offsets[i]!;
      offsets[i] = pump(f, before, outs[i]!);
    } while (offsets[i] !== before);
  });
  drain();
  if (o.follow) {
    // Files grow while the run goes on; its record says when it is over.
    while (active()) {
      await new Promise((r) => setTimeout(r, 200));
      drain();
    }
    drain();
  }
  // What was held for the next bytes (a character cut short, a CR at the very end): there are none.
  for (const x of outs) {
    const rest = x.text?.end();
    if (rest?.length) x.out.write(rest);
  }
}

export async function runs(o: { json?: boolean; limit: string }): Promise<void> {
  await withStore(async (store) => {
    const list = listRuns(store.db, Number(o.limit) || 20);
    if (o.json) return printJson(list);
    process.stdout.write(table([
      ['ID', 'STATUS', 'EXIT', 'BASE', 'TOTAL', 'HOST', 'CREATED', 'COMMAND'],
      ...list.map((r) => [r.id, r.cachedFrom ? `${r.status} (cached)` : r.status, r.exitCode === null ? '-' : String(r.exitCode), r.base, r.totalMs === null ? '-' : ms(r.totalMs),
        ownerHost(r.owner) ?? '-', r.createdAt.slice(0, 19), r.argv.join(' ').slice(0, 40)]),
    ]));
  });
}
