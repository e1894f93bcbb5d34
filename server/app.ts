/**
 * The Express application: routes and middleware only. What the routes do
 * lives in the services handed in, so tests can build the app around real
 * services with their own configuration.
 */
import { randomUUID } from 'node:crypto';
import express, { type Express, type RequestHandler, type Router } from 'express';
import type { ContainerClient } from '../executor/index.ts';
import type { Config } from './config.ts';
import type { Egress } from './egress.ts';
import { ApiError, errorHandler } from './errors.ts';
import { executeRouter, type ExecuteRouteDependencies } from './execute-route.ts';
import type { Logger } from './logger.ts';

export interface AppDependencies extends ExecuteRouteDependencies {
  config: Config;
  logger: Logger;
  docker: ContainerClient;
  images: Record<string, string>;
  /** Further routes (development JWKS, embedded policy service, administrator endpoints). */
  routers?: Router[];
  /** The egress route, for /readyz (a remote proxy service may be down while this server is up). */
  egress?: Pick<Egress, 'ready'>;
  /** Facts for /readyz beyond its checks (the audit writer's queue and drops); they never make the service unready. */
  readyDetails?: () => Record<string, unknown>;
}

function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const incoming = req.get('x-request-id');
    const id = incoming && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
    req.id = id;
    req.log = logger.child({ requestId: id });
    res.setHeader('X-Request-Id', id);
    next();
  };
}

export function createApp(deps: AppDependencies): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.use(requestContext(deps.logger));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    const checks: Record<string, string> = {};
    try {
      await deps.docker.ping();
      checks.docker = 'ok';
      for (const [runtime, image] of Object.entries(deps.images)) {
        checks[`image:${runtime}`] = (await deps.docker.hasImage(image)) ? 'ok' : `missing ${image}`;
      }
    } catch (error) {
      checks.docker = error instanceof Error ? error.message : 'unreachable';
    }
    if (deps.egress) checks.egress = (await deps.egress.ready()) ? 'ok' : 'egress proxy not answering';
    if (deps.drain.draining) checks.shutdown = 'draining';
    const ready = Object.values(checks).every((v) => v === 'ok');
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks, ...(deps.readyDetails === undefined ? {} : { details: deps.readyDetails() }) });
  });

  for (const router of deps.routers ?? []) app.use(router);

  app.use(executeRouter(deps));

  app.use((req, _res, next) => {
    next(new ApiError(404, 'NOT_FOUND', `No route for ${req.method} ${req.path}`));
  });
  app.use(errorHandler);
  return app;
}
