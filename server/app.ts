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
import type { IsolationChoice } from './isolation.ts';
import { ApiError, errorHandler } from './errors.ts';
import { executeLimitFor, executeRouter, type ExecuteRouteDependencies } from './execute-route.ts';
import { isLoopbackHost, loopbackHostGuard } from './host-guard.ts';
import type { Logger } from './logger.ts';
import { mcpRouter } from './mcp-route.ts';
import { addressRateLimit, authFailureLimit } from './rate-limit.ts';

export interface AppDependencies extends ExecuteRouteDependencies {
  config: Config;
  logger: Logger;
  docker: ContainerClient;
  images: Record<string, string>;
  /** The tiers sandboxes run under, reported by /readyz. */
  isolation?: IsolationChoice;
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
  // Which address the per-address limits see: the peer's, unless the operator names the proxies in front.
  app.set('trust proxy', deps.config.TRUST_PROXY);
  app.use(requestContext(deps.logger));
  if (isLoopbackHost(deps.config.HOST)) app.use(loopbackHostGuard(deps.config.HOST, deps.config.ALLOWED_HOSTS));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (req, res) => {
    const checks: Record<string, string> = {};
    try {
      await deps.docker.ping();
      checks.docker = 'ok';
      for (const [runtime, image] of Object.entries(deps.images)) {
        checks[`image:${runtime}`] = (await deps.docker.hasImage(image)) ? 'ok' : `missing ${image}`;
      }
    } catch (error) {
      // The engine's own words (socket paths, versions) are for the operator's log, not for whoever asks.
      req.log?.warn({ err: error }, 'readiness: sandbox engine unreachable');
      checks.docker = 'unreachable';
    }
    if (deps.egress) checks.egress = (await deps.egress.ready()) ? 'ok' : 'egress proxy not answering';
    if (deps.drain.draining) checks.shutdown = 'draining';
    const ready = Object.values(checks).every((v) => v === 'ok');
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'not ready',
      checks,
      ...(deps.isolation ? { isolation: deps.isolation.available } : {}),
      ...(deps.readyDetails === undefined ? {} : { details: deps.readyDetails() }),
    });
  });

  // Before any route that verifies a token, reads a body or looks a policy up: the cheapest refusals come first.
  app.use(addressRateLimit({ windowMs: deps.config.RATE_LIMIT_WINDOW_MS, max: deps.config.RATE_LIMIT_ADDRESS_MAX }));
  app.use(authFailureLimit({ windowMs: deps.config.RATE_LIMIT_WINDOW_MS, max: deps.config.RATE_LIMIT_AUTH_FAILURES_MAX }));

  for (const router of deps.routers ?? []) app.use(router);

  // One limiter for both doors in: an execution through MCP counts as one through /execute.
  const executeLimit = deps.executeLimit ?? executeLimitFor(deps.config);
  app.use(executeRouter({ ...deps, executeLimit }));
  app.use(mcpRouter({ ...deps, executeLimit }));

  app.use((req, _res, next) => {
    next(new ApiError(404, 'NOT_FOUND', `No route for ${req.method} ${req.path}`));
  });
  app.use(errorHandler);
  return app;
}
