import { createInterface } from 'node:readline';
import { VmwuError } from '../errors.js';
import { registryLogin } from '../oci/skopeo.js';
import { registryOptions, type RegistryFlags } from './registry-flags.js';

/** `vmwu login HOST`: registry credentials checked and stored where podman, skopeo and vmwu look for them. */

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Asks on the terminal; the password is not echoed. */
async function ask(question: string, secret: boolean): Promise<string> {
  if (!process.stdin.isTTY) throw new VmwuError('BAD_OPTION', `no terminal to ask for the ${secret ? 'password' : 'user'} on`, 'give --username and --password-stdin');
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  if (secret) (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => { if (s.includes(question)) process.stderr.write(s); };
  try {
    return await new Promise<string>((resolve) => rl.question(question, resolve));
  } finally {
    rl.close();
    if (secret) process.stderr.write('\n');
  }
}

export async function login(host: string, o: Omit<RegistryFlags, 'creds'> & { username?: string; passwordStdin?: boolean }): Promise<void> {
  const user = o.username ?? await ask('Username: ', false);
  const password = o.passwordStdin ? await readAll(process.stdin) : await ask('Password: ', true);
  const file = await registryLogin(host, user, password, registryOptions(o));
  process.stdout.write(`logged in to ${host}; credentials stored in ${file}\n`);
}
