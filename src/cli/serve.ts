import { VmwuError } from '../errors.js';
import { startServer } from '../server/index.js';
import { openStore } from '../store/store.js';

/** `vmwu serve`: the dashboard and JSON API until SIGINT/SIGTERM. */
export async function serve(o: { port: string; host: string; token?: string }): Promise<void> {
  if (!/^\d+$/.test(o.port) || Number(o.port) > 65535) throw new VmwuError('BAD_VALUE', `--port ${o.port}: expected a port number`);
  const store = openStore();
  let server;
  try {
    server = await startServer(store, { host: o.host, port: Number(o.port), token: o.token ?? process.env.VMWU_SERVE_TOKEN });
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
