import { existsSync } from 'node:fs';
import { VmwuError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import type { RunHooks, RunRequest, RunResult } from '../job-request.js';
import type { CachedRunNotes, RunCacheChoice } from '../run-cache.js';
import { absolutePaths, MAX_LINE, serviceMessage, serviceRefuses } from './protocol.js';
import { connectIfAnswered, onLines, sendLine } from './lines.js';
import { serviceSocketOf } from './serve.js';

/**
 * `vmwu run` through this host's warm pool service for the store, when one
 * runs (src/run/warm-service/serve.ts): the job is the service's to run, in
 * a clone kept warm for it. Undefined when there is no service to take it
 * (none runs, VMWU_WARM=0, or a job it does not take): the caller runs it.
 */
/** The service's first word on a job (its start) comes before any VM is started. */
const FIRST_WORD_MS = 60_000;

export async function runOnWarmService(store: Store, req: RunRequest, hooks: RunHooks & CachedRunNotes, cache: RunCacheChoice): Promise<RunResult | undefined> {
  if (process.env.VMWU_WARM === '0' || serviceRefuses(req)) return undefined;
  const path = await serviceSocketOf(store);
  if (!existsSync(path)) return undefined;
  // A socket left by a service that died: nobody answers.
  const conn = await connectIfAnswered(path);
  if (!conn) return undefined;
  return new Promise<RunResult>((resolve, reject) => {
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      conn.destroy();
      reject(e);
    };
    const onAbort = () => sendLine(conn, { t: 'abort' });
    hooks.signal?.addEventListener('abort', onAbort);
    conn.on('close', () => {
      clearTimeout(silent);
      hooks.signal?.removeEventListener('abort', onAbort);
      fail(new VmwuError('WARM_SERVICE', `the warm pool service (${path}) went away before the job ended`, 'see where `vmwu warm --keep` runs; the job\'s record in the store says how far it got'));
    });
    conn.on('error', () => undefined);
    // A service that took the connection but says nothing (stopped, wedged) must not hang the caller.
    const silent = setTimeout(() => fail(new VmwuError('WARM_SERVICE', `the warm pool service (${path}) did not answer within ${FIRST_WORD_MS / 1000} s`,
      'see where `vmwu warm --keep` runs, or stop it: vmwu run then runs jobs itself')), FIRST_WORD_MS);
    onLines(conn, MAX_LINE, (line) => {
      clearTimeout(silent);
      let msg;
      try {
        msg = serviceMessage.parse(JSON.parse(line));
      } catch (e) {
        return fail(new VmwuError('WARM_SERVICE', `the warm pool service said something that is not of its protocol: ${(e as Error).message.slice(0, 500)}`));
      }
      switch (msg.t) {
        case 'start':
          return hooks.onStart?.({ id: msg.id, runDir: msg.runDir, outDir: msg.outDir, accel: msg.accel });
        case 'out':
          return hooks.onOutput?.(msg.stream, Buffer.from(msg.data, 'base64'));
        case 'cached':
          return hooks.onCached?.({ runId: null, source: msg.source });
        case 'damaged':
          return hooks.onDamaged?.(msg.why);
        case 'error':
          return fail(new VmwuError(msg.code, msg.message, msg.hint));
        case 'result':
          settled = true;
          conn.end();
          return resolve(msg.result as unknown as RunResult);
      }
    });
    sendLine(conn, { t: 'run', request: absolutePaths(req, process.cwd()), cache });
  });
}
