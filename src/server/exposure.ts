import { BlockList, isIP } from 'node:net';
import { VmwuError } from '../errors.js';

/**
 * Who may reach the dashboard and under which names: the bind address decides
 * whether TLS is needed, the allowed names feed the Host and Origin checks, and
 * the printed URL uses a name that passes them. Pure: the machine's name comes in.
 */

export interface ExposureRequest {
  /** The address to bind (`--host`). */
  host: string;
  /** Whether the server speaks TLS (`--tls-cert`/`--tls-key`). */
  tls: boolean;
  /** Further names clients may use in the Host header (`--allow-host`). */
  allowHosts: readonly string[];
  /** This machine's name (os.hostname()): the URL's name when binding to every address. */
  machineName: string;
  /** The port asked for, for the SSH tunnel in the hint (0: any). */
  port: number;
}

export interface Exposure {
  scheme: 'http' | 'https';
  /** Lower case, IPv6 in brackets: what a Host header may name (with the port). */
  names: string[];
  /** The name the printed URL carries; always one of `names`. */
  urlName: string;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
const UNSPECIFIED = new BlockList();
UNSPECIFIED.addAddress('0.0.0.0', 'ipv4');
UNSPECIFIED.addAddress('::', 'ipv6');

const bare = (h: string) => (h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h);
const family = (ip: string) => (isIP(ip) === 6 ? 'ipv6' : 'ipv4');

/** An address only this machine can reach: 127.0.0.0/8, ::1 (also IPv4-mapped) or `localhost`. */
export function isLoopback(host: string): boolean {
  const h = bare(host).toLowerCase();
  if (h === 'localhost' || h === 'localhost.') return true;
  return isIP(h) !== 0 && LOOPBACK.check(h, family(h));
}

/** 0.0.0.0 or `::`: every interface. Never a name a client may use (a browser maps 0.0.0.0 to itself). */
export function isUnspecified(host: string): boolean {
  const h = bare(host);
  return isIP(h) !== 0 && UNSPECIFIED.check(h, family(h));
}

const LABEL = '[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?';
const HOSTNAME = new RegExp(`^${LABEL}(\\.${LABEL})*\\.?$`);

/** A host name or address as a Host header carries it: lower case, IPv6 in brackets, no port. */
export function normaliseHostName(name: string, what: string): string {
  const h = bare(name.trim()).toLowerCase();
  if (isIP(h) === 6) return `[${h}]`;
  if (isIP(h) === 4 || (h.length <= 253 && HOSTNAME.test(h))) return h;
  throw new VmwuError('BAD_VALUE', `${what} ${JSON.stringify(name)}: expected a host name or an IP address, without a port`,
    'e.g. --allow-host dash.example.org or --allow-host 192.0.2.7');
}

/**
 * Decides the scheme, the allowed names and the URL's name, or refuses a bind
 * address beyond loopback without TLS: there the token would cross the network
 * in the clear. The refusal names both ways out: TLS, or an SSH tunnel to a
 * loopback-bound server.
 */
export function planExposure(r: ExposureRequest): Exposure {
  if (r.host.trim() === '') throw new VmwuError('BAD_VALUE', '--host is empty', 'give an address to bind, e.g. --host 127.0.0.1 (the default)');
  const loopback = isLoopback(r.host);
  const everywhere = isUnspecified(r.host);
  if (!loopback && !r.tls) {
    const port = r.port || 8080;
    throw new VmwuError('INSECURE_BIND',
      `--host ${r.host}: serving beyond this machine over plain HTTP would send the access token in the clear`,
      `serve with TLS: --tls-cert FILE --tls-key FILE (and --allow-host NAME for the name clients use); `
      + `or keep the default --host 127.0.0.1 and use an SSH tunnel from your computer: ssh -L ${port}:127.0.0.1:${port} ${r.machineName} `
      + `(then open the printed http://127.0.0.1:${port}/?token=… URL there)`);
  }
  const names = new Set(['127.0.0.1', 'localhost', '[::1]']);
  if (!everywhere) names.add(normaliseHostName(r.host, '--host'));
  const allowed = r.allowHosts.map((h) => normaliseHostName(h, '--allow-host'));
  for (const h of allowed) names.add(h);
  let urlName: string;
  if (loopback) urlName = normaliseHostName(r.host, '--host');
  else if (allowed.length) urlName = allowed[0]!;
  else if (everywhere) urlName = normaliseHostName(r.machineName, 'this machine\'s name');
  else urlName = normaliseHostName(r.host, '--host');
  names.add(urlName);
  return { scheme: r.tls ? 'https' : 'http', names: [...names], urlName };
}

const DEFAULT_PORT = { http: 80, https: 443 } as const;

/**
 * The exact Host header values accepted on `port`: `name:port` for each allowed
 * name, and the bare name when `port` is the scheme's default (clients omit it then).
 */
export function hostForms(e: Exposure, port: number): Set<string> {
  const forms = new Set<string>();
  for (const n of e.names) {
    forms.add(`${n}:${port}`);
    if (port === DEFAULT_PORT[e.scheme]) forms.add(n);
  }
  return forms;
}

/** The origins a same-origin request may send (`Origin: scheme://host[:port]`). */
export function originForms(e: Exposure, port: number): Set<string> {
  return new Set([...hostForms(e, port)].map((h) => `${e.scheme}://${h}`));
}

/** The base URL clients open; it passes the Host check. */
export function baseUrl(e: Exposure, port: number): string {
  const p = port === DEFAULT_PORT[e.scheme] ? '' : `:${port}`;
  return `${e.scheme}://${e.urlName}${p}/`;
}
