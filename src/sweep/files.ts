import picomatch from 'picomatch';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ListFiles } from './plan/index.js';

/** The files a plan's `files` parameters range over, found in the experiment root. */

/**
 * Lists the files a `files` parameter's patterns match in the experiment root,
 * as paths relative to it. Only descends as deep as the patterns can reach, so a
 * plan kept in a big directory does not cost a walk of the whole tree.
 */
export function listFilesIn(root: string): ListFiles {
  return (patterns) => {
    const match = picomatch(patterns, { dot: false });
    const deep = patterns.some((p) => p.includes('**'));
    const depth = deep ? Infinity : Math.max(...patterns.map((p) => p.split('/').length));
    const out: string[] = [];
    const walk = (dir: string, rel: string, level: number) => {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const d of entries) {
        const r = rel ? `${rel}/${d.name}` : d.name;
        if (d.isFile() && match(r)) out.push(r);
        else if (d.isDirectory() && level < depth && !d.name.startsWith('.')) walk(join(dir, d.name), r, level + 1);
      }
    };
    walk(root, '', 1);
    return out;
  };
}
