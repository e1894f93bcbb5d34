/**
 * The Express application: routes and middleware only. What the routes do
 * lives in the services handed in, so tests can build the app around real
 * services with their own configuration.
 */
import { randomUUID } from 'node:crypto';
import express, { type Express, type Request, type RequestHandler, type Router } from 'express';
import type { ContainerClient } from '../executor/index.ts';
import type { Config } from './config.ts';
import type { Egress } from './egress.ts';
import { ApiError, badRequest, errorHandler } from './errors.ts';
import { sealJsonResponses, type ResponseEncryptor } from './encryption.ts';
import { describeIssues, ExecuteRequestSchema } from './execute-request.ts';
import { trackExecution } from './execution-log.ts';
import type { Caller, ExecutionService } from './execution-service.ts';
import { envFromHeaders } from './header-env.ts';
import type { Logger } from './logger.ts';
import type { ServiceMetrics } from './metrics.ts';
import { executeRateLimit } from './rate-limit.ts';
import type { Drain } from './shutdown.ts';

export interface AppDependencies {
  config: Config;
  logger: Logger;
  executions: ExecutionService;
  docker: ContainerClient;
  images: Record<string, string>;
  /**
   * Who is calling and under which policy: verifies the bearer token (throwing
   * an ApiError 401 when it fails) and fetches the caller's policy.
   */
  resolveCaller: (req: Request) => Promise<Caller>;
  /** Further routes (development JWKS, embedded policy service, administrator endpoints). */
  routers?: Router[];
  /** Seals the answers of requests with `encrypt_messages`; unset, such requests get 400. */
  encryptor?: ResponseEncryptor;
  metrics: ServiceMetrics;
  /** Refuses new executions, and fails /readyz, once shutdown begins. */
  drain: Drain;
  /** The egress route, for /readyz (a remote proxy service may be down while this server is up). */
  egress?: Pick<Egress, 'ready'>;
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
  const { config } = deps;
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
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });

  for (const router of deps.routers ?? []) app.use(router);

  // The body limit leaves room for JSON escaping of the largest code allowed;
  // the code size itself is checked after parsing so the answer can name it.
  const bodyLimit = config.EXEC_MAX_CODE_BYTES * 2 + 10 * 1024 * 1024;
  // Identity first: a bad token is the first answer, even when the body is
  // broken too. The refusal waits for the body only to learn whether it
  // must be encrypted; a body that cannot be read leaves it plain.
  const callers = new WeakMap<Request, Caller>();
  const identityFailures = new WeakMap<Request, unknown>();
  const identifyCaller: RequestHandler = async (req, _res, next) => {
    try {
      callers.set(req, await deps.resolveCaller(req));
    } catch (error) {
      identityFailures.set(req, error);
    }
    next();
  };
  const protectAnswer: RequestHandler = (req, res, next) => {
    const failed = identityFailures.has(req);
    if ((req.body as { encrypt_messages?: unknown } | undefined)?.encrypt_messages === true) {
      if (deps.encryptor === undefined && !failed) {
        throw new ApiError(400, 'ENCRYPTION_UNAVAILABLE', 'encrypt_messages was requested but this server has no RESPONSE_ENCRYPTION_KEY configured', [
          { field: 'encrypt_messages', message: 'not available on this server' },
        ]);
      }
      if (deps.encryptor !== undefined) {
        sealJsonResponses(res, deps.encryptor, (err) => req.log?.error({ err }, 'response encryption failed'));
      }
    }
    next(failed ? identityFailures.get(req) : undefined);
  };
  const rateLimit = executeRateLimit({
    windowMs: config.RATE_LIMIT_WINDOW_MS,
    subjectMax: config.RATE_LIMIT_SUBJECT_MAX,
    ipMax: config.RATE_LIMIT_IP_MAX,
    subjectOf: (req) => callers.get(req)?.subject,
  });
  const parseJson = express.json({ limit: bodyLimit, strict: true, type: () => true });
  const readBody: RequestHandler = (req, res, next) => {
    parseJson(req, res, (error?: unknown) => next(error !== undefined && identityFailures.has(req) ? identityFailures.get(req) : error));
  };
  app.post('/execute', identifyCaller, readBody, protectAnswer, rateLimit, async (req, res) => {
    const caller = callers.get(req) ?? (await deps.resolveCaller(req));
    if (req.body === undefined || typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
      throw badRequest('Request body must be a JSON object', [{ field: '(body)', message: 'expected a JSON object' }]);
    }
    const parsed = ExecuteRequestSchema.safeParse(req.body);
    if (!parsed.success) {
      const details = describeIssues(parsed.error);
      throw badRequest(`Invalid request: ${details.map((d) => `${d.field}: ${d.message}`).join('; ')}`, details);
    }
    const body = parsed.data;
    const codeBytes = Buffer.byteLength(body.code);
    if (codeBytes > config.EXEC_MAX_CODE_BYTES) {
      throw new ApiError(413, 'CODE_TOO_LARGE', `code is ${codeBytes} bytes; the limit is ${config.EXEC_MAX_CODE_BYTES}`, [
        { field: 'code', message: 'too large' },
      ]);
    }
    const headerEnv = envFromHeaders(req.headersDistinct);
    if (!headerEnv.ok) {
      throw badRequest(`Invalid request: ${headerEnv.problems.map((d) => `${d.field}: ${d.message}`).join('; ')}`, headerEnv.problems);
    }
    // The body wins over a header of the same name.
    body.env = { ...headerEnv.env, ...body.env };
    // A caller that goes away while queued gives its place up.
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    const data = await trackExecution(req.log ?? deps.logger, deps.metrics, body, caller, () =>
      deps.drain.run(() => deps.executions.execute(body, caller, gone.signal)),
    );
    res.json({ success: true, data });
  });

  app.use((req, _res, next) => {
    next(new ApiError(404, 'NOT_FOUND', `No route for ${req.method} ${req.path}`));
  });
  app.use(errorHandler);
  return app;
}
