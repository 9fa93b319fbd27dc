import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { VmwuError } from '../../errors.js';
import { requireBase } from '../../store/bases.js';
import type { Digest } from '../../store/blobs.js';
import type { Store } from '../../store/store.js';
import { hostTscKhz } from '../../vm/host.js';
import { qemuUser } from '../../vm/qemu-user.js';
import { fastStartShape, type FastStartRequest } from './clone.js';
import { hostSetup } from '../host-setup.js';
import type { CacheUse } from '../node-cache.js';
import { obtainTemplate, templateCache, templateKey, TemplateUnavailable, type TemplateCache, type TemplateShape } from './template.js';

/** This host's template for a shape of job made ahead of time (`vmwu warm`), so that even the first such job restores instead of booting. */

export interface WarmRequest extends Omit<FastStartRequest, 'cold' | 'keepRoot'> {
  base: string;
  layers?: Digest[];
}

export interface WarmResult {
  key: string;
  /** False when this host already had the template. */
  made: boolean;
  ms: number;
  dir: string;
}

/** The template shape of the jobs a warm request describes, with this host's template cache (holding its blobs: release `cache`). */
export async function warmShape(store: Store, req: WarmRequest): Promise<{ shape: TemplateShape; templates: TemplateCache; cache: CacheUse }> {
  const base = requireBase(store.db, req.base);
  const { config, dirs, image, accel, cache } = await hostSetup(store, base, req.layers);
  try {
    if (!config.fastStart) throw new VmwuError('FAST_START_OFF', 'fast start is turned off for this store (config.yaml fastStart: false)', 'remove fastStart: false from config.yaml');
    const templates = templateCache(dirs, store.paths.root, qemuUser(), undefined, cache);
    const shape = fastStartShape({ accel, image, templates }, req, hostTscKhz());
    if (typeof shape === 'string') throw new VmwuError('NO_TEMPLATE', `jobs of ${base.name} cannot start from a template: ${shape}`);
    return { shape, templates, cache };
  } catch (e) {
    cache.release();
    throw e;
  }
}

/** `vmwu warm`: makes this host's template for jobs of this shape now, so the first job restores too. */
export async function warmTemplate(store: Store, req: WarmRequest): Promise<WarmResult> {
  const started = performance.now();
  const { shape, templates, cache } = await warmShape(store, req);
  try {
    const key = templateKey(shape);
    const had = existsSync(join(templates.dir, key, 'template.json'));
    // A damaged template is removed by the first try and made by the second.
    for (let tries = 1; ; tries++) {
      try {
        await obtainTemplate(templates, shape);
        break;
      } catch (e) {
        if (tries < 2 && e instanceof TemplateUnavailable && /damaged/.test(e.message)) continue;
        throw new VmwuError('NO_TEMPLATE', (e as Error).message, 'jobs still run, by booting; `vmwu doctor` checks the QEMU and the base');
      }
    }
    return { key, made: !had, ms: Math.round(performance.now() - started), dir: join(templates.dir, key) };
  } finally {
    cache.release();
  }
}
