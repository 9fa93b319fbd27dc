// What both launchers share: they run the compiled CLI in dist/, which a fresh clone
// has only after set-up (npm ci, tsc). That case, and a dependency package missing
// from node_modules, get one line saying what to run instead of a module stack trace.
// Plain JavaScript that imports only node: modules, so it works before set-up.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Whether `name` is one of package.json's own dependencies (else a missing one is a bug in vmwu, not a missing set-up). */
function declared(name) {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    return Object.hasOwn(pkg.dependencies ?? {}, name) || Object.hasOwn(pkg.devDependencies ?? {}, name);
  } catch {
    return false;
  }
}

/**
 * True when `e` says set-up has not run: the dist/ entry file itself is missing, or a
 * package that package.json declares is missing. A module missing inside dist/ is a
 * real bug and keeps its stack trace.
 */
export function notSetUp(e, entryUrl) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND') return false;
  if (e.url === entryUrl) return true;
  const pkg = /^Cannot find package '([^']+)'/.exec(String(e.message))?.[1];
  return pkg !== undefined && declared(pkg);
}

/** Imports `entry` (relative to bin/) and hands the module to `run`; a failure before set-up ends with the hint and exit 1, any other with the error and exit 125. */
export function launch(entry, run) {
  const entryUrl = new URL(entry, import.meta.url).href;
  import(entryUrl).then(run).catch((e) => {
    if (notSetUp(e, entryUrl)) {
      console.error(`vmwu is not set up in ${root} yet: run \`npm run setup\` (or \`sh scripts/setup.sh\`) there first`);
      process.exit(1);
    }
    console.error(e);
    process.exit(125);
  });
}
