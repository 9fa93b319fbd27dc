import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { VmwuError } from '../errors.js';

/** The certificate and key the dashboard serves HTTPS with, checked to load and belong together when the server starts rather than at its first client. */

export interface TlsFiles {
  /** PEM certificate (chain) file: `--tls-cert`. */
  certFile: string;
  /** PEM private key file: `--tls-key`. */
  keyFile: string;
}

export interface TlsMaterial { cert: Buffer; key: Buffer }

const HINT = 'give a PEM certificate and its unencrypted PEM key, e.g. from your CA, Let\'s Encrypt, or for a test: '
  + 'openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=NAME -addext subjectAltName=DNS:NAME -keyout key.pem -out cert.pem';

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new VmwuError('NO_TLS_FILE', `${flag} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, HINT);
  }
}

/**
 * Reads the certificate and key and checks that they load and belong together,
 * so a bad pair fails at start with the file names instead of at the first client.
 */
export function loadTls(t: Partial<TlsFiles>): TlsMaterial {
  if (!t.certFile || !t.keyFile) {
    throw new VmwuError('BAD_VALUE', `${t.certFile ? '--tls-key' : '--tls-cert'} is missing: TLS needs both --tls-cert FILE and --tls-key FILE`, HINT);
  }
  const cert = readPem(t.certFile, '--tls-cert');
  const key = readPem(t.keyFile, '--tls-key');
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new VmwuError('BAD_TLS', `--tls-cert ${t.certFile} / --tls-key ${t.keyFile}: ${(e as Error).message}`, HINT);
  }
  return { cert, key };
}
