#!/usr/bin/env node
// docker's command line for workflow engines (cwltool, Toil, Nextflow): put this on PATH as `docker`.
import { launch } from './launch.js';

launch('../dist/cli/docker.js', async (m) => { process.exitCode = await m.dockerMain(process.argv.slice(2)); });
