import { VmwuError } from '../errors.js';
import { checkToken, startServer } from '../server/index.js';
import { openStore } from '../store/store.js';

/** The dashboard and JSON API started from the command line (`vmwu serve`), up until SIGINT or SIGTERM. */

export interface ServeOptions {
  port: string;
  host: string;
  tlsCert?: string;
  tlsKey?: string;
  allowHost: string[];
}

/** `vmwu serve`: the dashboard and JSON API until SIGINT/SIGTERM. */
export async function serve(o: ServeOptions): Promise<void> {
  if (!/^\d+$/.test(o.port) || Number(o.port) > 65535) throw new VmwuError('BAD_VALUE', `--port ${o.port}: expected a port number`);
  // Set, even to nothing, means chosen: an empty or weak token is refused, never replaced.
  const token = process.env.VMWU_SERVE_TOKEN;
  if (token !== undefined) checkToken(token, 'VMWU_SERVE_TOKEN');
  const store = openStore();
  let server;
  try {
    server = await startServer(store, {
      host: o.host, port: Number(o.port), token, tokenSource: 'VMWU_SERVE_TOKEN', allowHosts: o.allowHost,
      tls: o.tlsCert !== undefined || o.tlsKey !== undefined ? { certFile: o.tlsCert, keyFile: o.tlsKey } : undefined,
    });
  } catch (e) {
    store.close();
    throw e;
  }
  process.stdout.write(`${server.loginUrl}\n`);
  process.stderr.write(`vmwu: dashboard at ${server.url} (open the URL above once; it sets a cookie). API: Authorization: Bearer ${server.token}\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await server.close();
  store.close();
}
