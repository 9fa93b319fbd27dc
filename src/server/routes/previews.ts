import type { FastifyInstance } from 'fastify';
import type { Store } from '../../store/store.js';
import { readCapped } from '../files.js';
import { inlineDisposition, makePreview, MAX_PREVIEW_BYTES, NoPreview, PREVIEW_HEADERS } from '../image-preview.js';
import { attemptFile, deny } from './context.js';

/**
 * A job's image output shown in the page (`?thumb=1`: small): found exactly as a
 * download is (confinedFile), typed by its bytes, and answered with headers that let
 * no script in it run (src/server/image-preview.ts).
 */

export function registerPreviews(app: FastifyInstance, store: Store): void {
  app.get<{ Params: { name: string; idx: string; '*': string }; Querystring: { attempt?: string; thumb?: string } }>('/api/experiments/:name/jobs/:idx/preview/*', async (req, reply) => {
    // As for downloads.
    const found = attemptFile(store, req.params, req.query.attempt, req.raw.url ?? '', '/preview/');
    if ('status' in found) return deny(reply, found.status, found.error, found.message);
    const { file } = found;
    const read = readCapped(file, MAX_PREVIEW_BYTES);
    if (!read) return deny(reply, 404, 'NO_FILE', 'no such file in the job\'s outputs');
    if ('tooBig' in read) return deny(reply, 413, 'TOO_BIG_TO_PREVIEW', `the file is larger than ${MAX_PREVIEW_BYTES / 1024 / 1024} MiB: download it instead`);
    let preview;
    try {
      preview = makePreview(read.data, { thumb: req.query.thumb === '1' });
    } catch (e) {
      if (e instanceof NoPreview) return deny(reply, e.status, e.code, e.message);
      throw e;
    }
    return reply.headers(PREVIEW_HEADERS).header('content-type', preview.contentType)
      .header('content-disposition', inlineDisposition(file.split('/').pop()!)).send(preview.body);
  });
}
