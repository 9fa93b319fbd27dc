import type { FastifyInstance } from 'fastify';
import type { Store } from '../../store/store.js';
import { requireExperiment } from '../../sweep/index.js';
import { galleryPage } from '../gallery.js';

/** An experiment's gallery: a page of its finished jobs' image outputs (src/server/gallery.ts); `after` is the previous page's `next`. */

export function registerGallery(app: FastifyInstance, store: Store): void {
  app.get<{ Params: { name: string }; Querystring: { after?: string; jobs?: string } }>('/api/experiments/:name/gallery', async (req) => {
    requireExperiment(store.db, req.params.name);
    const num = (s: string | undefined) => (s !== undefined && /^\d{1,15}$/.test(s) ? Number(s) : undefined);
    return galleryPage(store.db, req.params.name, { after: num(req.query.after), jobs: num(req.query.jobs) });
  });
}
