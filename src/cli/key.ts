import { generateSigningKeys } from '../sign/keys.js';
import { printJson } from './output.js';

/** `vmwu key generate`. */
export function keyGenerate(o: { out: string; json?: boolean }): void {
  const files = generateSigningKeys(o.out);
  if (o.json) return printJson(files);
  process.stderr.write(`vmwu: wrote the private key ${files.privateKey} (keep it secret) and the public key ${files.publicKey} (give it to those who verify)\n`);
  process.stdout.write(`${files.publicKey}\n`);
}
