import { spawn } from 'node:child_process';
import { VmwuError } from '../errors.js';

/**
 * Running the host tools vmwu needs (qemu-img, mke2fs, apt-get …): a missing tool or a failure as a
 * VmwuError with a hint, and kernel resource limits for a tool that reads what vmwu did not make.
 */

export interface ToolResult {
  stdout: string;
  stderr: string;
}

/**
 * Kernel resource limits for a tool that reads input vmwu did not make (qemu-img on a
 * user's image): a crafted file may make it loop, allocate or write without end.
 */
export interface ResourceLimits {
  /** CPU seconds (user + system, all threads); SIGXCPU past it. */
  cpuSeconds: number;
  /** Address space in bytes; allocations past it fail. */
  addressSpace: number;
  /** Largest file it may write, in bytes; SIGXFSZ past it. */
  fileSize?: number;
}

/**
 * The argv that runs `cmd` under `limits` with util-linux `prlimit`. The CPU hard limit
 * is a little above the soft one, so the tool gets SIGXCPU (which names the cause)
 * rather than SIGKILL. No core files: a tool killed by a limit must not leave one.
 */
export function limitedArgv(cmd: string, args: string[], limits: ResourceLimits): [string, string[]] {
  const cpu = Math.max(1, Math.ceil(limits.cpuSeconds));
  return ['prlimit', [
    `--cpu=${cpu}:${cpu + 5}`, `--as=${Math.floor(limits.addressSpace)}`, '--core=0',
    ...(limits.fileSize !== undefined ? [`--fsize=${Math.floor(limits.fileSize)}`] : []),
    '--', cmd, ...args,
  ]];
}

/** What a limit-enforcing signal means, for the error message. */
function limitHit(signal: NodeJS.Signals | null, stderr: string, limits: ResourceLimits | undefined): string | null {
  if (!limits) return null;
  if (signal === 'SIGXCPU' || signal === 'SIGKILL') return `it used up its CPU-time limit (${Math.ceil(limits.cpuSeconds)} s)`;
  if (signal === 'SIGXFSZ') return `it reached its file-size limit (${limits.fileSize} bytes)`;
  // Past the address-space limit, allocations fail with ENOMEM and new threads (whose stacks are mappings) with EAGAIN.
  if (/Cannot allocate memory|Out of memory|failed to allocate|thread_create: Resource temporarily unavailable/i.test(stderr)) return `it reached its address-space limit (${limits.addressSpace} bytes)`;
  return null;
}

/**
 * Runs an external tool (qemu-img, mke2fs, cpio, apt-get, dpkg …) to completion.
 * A missing tool or a non-zero exit becomes a VmwuError naming the tool and its
 * stderr tail, since that is what a user needs to fix it.
 */
export function runTool(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string | Buffer; hint?: string; limits?: ResourceLimits } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const [file, argv] = opts.limits ? limitedArgv(cmd, args, opts.limits) : [cmd, args];
    const child = spawn(file, argv, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(new VmwuError('TOOL_MISSING', `cannot run ${file}: ${e.code === 'ENOENT' ? 'not installed' : e.message}`,
        opts.hint ?? 'run `vmwu doctor` to see which host tools are missing'));
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) return resolve({ stdout, stderr });
      const tail = stderr.trim().split('\n').slice(-5).join('\n');
      if (opts.limits && code === 127 && stderr.startsWith('prlimit: failed to execute')) {
        reject(new VmwuError('TOOL_MISSING', `cannot run ${cmd}: not installed`, opts.hint ?? 'run `vmwu doctor` to see which host tools are missing'));
        return;
      }
      const limit = limitHit(signal, stderr, opts.limits);
      if (limit) {
        reject(new VmwuError('TOOL_LIMIT', `${cmd} ${args.slice(0, 3).join(' ')}… was stopped: ${limit}${tail ? `:\n${tail}` : ''}`,
          opts.hint ?? 'the input is unusually costly to process, or crafted to be; check where it came from'));
        return;
      }
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
