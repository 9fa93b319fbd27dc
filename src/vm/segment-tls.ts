import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect, createServer, type TLSSocket } from 'node:tls';

/**
 * A multi-VM job's segment across the nodes of a batch allocation: the hub's
 * task listens on TCP, and each other node's task links its VM to it over TLS
 * keyed by the job's own secret (TLS-PSK; the token only the job's task file
 * holds, on the user's private store). A peer that does not hold the token gets
 * no handshake; one that does says which VM it is in its PSK identity, and each
 * VM is taken once. So only the job's own VMs join, and nothing on the wire
 * between nodes can be read or changed.
 */

/** TLS 1.2 is the version whose PSK suites Node (OpenSSL) offers without certificates. */
const TLS = { ciphers: 'PSK-AES256-GCM-SHA384', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const;
const IDENTITY = /^vmwu-vm-(\d{1,3})$/;

export interface SegmentListener {
  port: number;
  close(): void;
}

/** Listens for the job's other VMs; `attach(k, stream)` gets VM k's once its handshake proved the token. */
export async function listenForVms(token: string, attach: (k: number, s: Duplex) => void): Promise<SegmentListener> {
  const psk = Buffer.from(token, 'hex');
  const claimed = new WeakMap<TLSSocket, number>();
  const server = createServer({
    ...TLS,
    pskCallback: (socket, identity) => {
      const m = IDENTITY.exec(identity);
      if (!m) return null;
      claimed.set(socket, Number(m[1]));
      return psk;
    },
  }, (socket) => {
    socket.on('error', () => socket.destroy());
    const k = claimed.get(socket);
    if (k === undefined) socket.destroy();
    else attach(k, socket);
  });
  // A handshake with the wrong key is only that: the listener goes on.
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, () => resolve());
  });
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

/** VM k's link to the hub at host:port, proved by the job's token. */
export function connectToHub(host: string, port: number, token: string, k: number): Promise<Duplex> {
  const psk = Buffer.from(token, 'hex');
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, ...TLS, pskCallback: () => ({ identity: `vmwu-vm-${k}`, psk }), checkServerIdentity: () => undefined });
    s.once('secureConnect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}
