#!/usr/bin/env node
// docker's command line for workflow engines (cwltool, Toil, Nextflow): put this on PATH as `docker`.
import('../dist/src/cli/docker.js').then(async (m) => { process.exitCode = await m.dockerMain(process.argv.slice(2)); }).catch((e) => {
  console.error(e);
  process.exit(125);
});
