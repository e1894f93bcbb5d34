/** Serves the development key's public half, so other services can verify demo tokens too. */
import { Router } from 'express';
import type { DevelopmentKeys } from './dev-keys.ts';

export const JWKS_PATH = '/.well-known/jwks.json';

export function developmentJwksRouter(keys: DevelopmentKeys): Router {
  const router = Router();
  router.get(JWKS_PATH, (_req, res) => {
    res.set('Cache-Control', 'public, max-age=300').json(keys.jwks);
  });
  return router;
}
