// Bundles the two command lines (dist/src/cli/main.js, dist/src/cli/docker.js, as tsc
// compiled them) into dist/cli with esbuild: node then reads a few files, not the ~240
// modules and zod's ~90 it would resolve and load one by one (~70 ms of every command's
// start: BENCHMARKS.md). Chunks keep the lazily imported parts (executors, dashboard)
// lazy. Packages with native code or files of their own stay outside.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'cli');
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: { main: join(root, 'dist/src/cli/main.js'), docker: join(root, 'dist/src/cli/docker.js') },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['better-sqlite3', 'ssh2', 'cpu-features', 'fastify', '@fastify/*'],
  // CommonJS packages bundled into ESM still call require() for node's own modules.
  banner: { js: "import { createRequire as vmwuCreateRequire } from 'node:module'; const require = vmwuCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
console.error('bundle-cli: dist/cli/main.js dist/cli/docker.js');
