#!/usr/bin/env node
import { launch } from './launch.js';

launch('../dist/cli/main.js', (m) => m.main(process.argv));
