import type { FastifyInstance } from 'fastify';
import { listBases } from '../../store/bases.js';
import { layerChain, listUnits } from '../../unit/records.js';
import type { RouteContext } from './context.js';

/** What jobs run on: the built units with their layer chains, and the bases. */

export function registerUnits(app: FastifyInstance, { store }: RouteContext): void {
  app.get('/api/units', async () => listUnits(store.db).map((u) => {
    const chain = layerChain(store.db, u.top).map((l) => ({ digest: l.digest, kind: l.kind, packages: l.packages, size: l.size, createdAt: l.createdAt }));
    return {
      name: u.name, version: u.version, digest: u.digest, base: u.base, baseDigest: u.baseDigest, createdAt: u.createdAt,
      packages: u.packages, chain, size: chain.reduce((s, l) => s + l.size, 0),
    };
  }));

  app.get('/api/bases', async () => listBases(store.db).map((b) => ({ ...b })));
}
