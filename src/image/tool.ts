import { spawn } from 'node:child_process';
import { VmwuError } from '../errors.js';

export interface ToolResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs an external tool (qemu-img, mke2fs, cpio, apt-get, dpkg …) to completion.
 * A missing tool or a non-zero exit becomes a VmwuError naming the tool and its
 * stderr tail, since that is what a user needs to fix it.
 */
export function runTool(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer; hint?: string } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new VmwuError('TOOL_MISSING', `cannot run ${cmd}: ${e.code === 'ENOENT' ? 'not installed' : e.message}`,
        opts.hint ?? 'run `vmwu doctor` to see which host tools are missing'));
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) return resolve({ stdout, stderr });
      const tail = stderr.trim().split('\n').slice(-5).join('\n');
      reject(new VmwuError('TOOL_FAILED', `${cmd} ${args.slice(0, 3).join(' ')}… failed (${signal ?? `exit ${code}`})${tail ? `:\n${tail}` : ''}`,
        opts.hint));
    });
    if (child.stdin) {
      // A tool may exit without reading all of its input; its exit status tells what went wrong.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}
