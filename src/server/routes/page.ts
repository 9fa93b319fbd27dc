import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RouteContext } from './context.js';

/** The dashboard itself: its page, its static assets and the session call that gives a script the CSRF token. */

export async function registerPage(app: FastifyInstance, { webDir, indexHtml, csrf }: RouteContext): Promise<void> {
  await app.register(fastifyStatic, { root: webDir, prefix: '/static/', index: false, cacheControl: false });

  const page = (_req: FastifyRequest, reply: FastifyReply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store')
      .header('content-security-policy', "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'")
      .send(indexHtml.replace('__CSRF__', csrf));
  app.get('/', page);

  app.get('/api/session', async () => ({ csrf }));
}
