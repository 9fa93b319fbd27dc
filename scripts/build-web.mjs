// Builds the dashboard's static assets into web/dist: the hand-written files from
// web/ plus Chart.js's UMD build from node_modules (served locally: no CDN at run time).
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'web');
const out = join(src, 'dist');
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const f of readdirSync(src, { withFileTypes: true })) {
  if (f.isFile() && /\.(html|js|css)$/.test(f.name)) copyFileSync(join(src, f.name), join(out, f.name));
}
const require = createRequire(join(root, 'package.json'));
const chart = join(dirname(require.resolve('chart.js')), 'chart.umd.min.js');
copyFileSync(chart, join(out, 'chart.umd.min.js'));
console.error(`build-web: ${readdirSync(out).join(' ')} -> web/dist`);
