/**
 * `POST /execute` as one pipeline, one named step per stage, in this order:
 *
 *   JSON only? → authenticate → read the body → seal? → rate-limit → validate
 *     → resolve the policy → bind secrets → execute → answer
 *
 * A request with `Accept: text/event-stream` takes the same steps; only
 * execute (which then reports the run as it goes) and answer (a `result`
 * event instead of a JSON body) differ: see event-stream.ts.
 *
 * (The app's per-address limits run before all of it, see app.ts.)
 *
 * What a step learns goes on `res.locals` (ExecuteLocals) for the steps
 * after it. A step that fails throws, and the one error handler answers.
 */
import express, { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import type { Config } from './config.ts';
import { sealJsonResponses, type ResponseEncryptor } from './encryption.ts';
import { ApiError, badRequest, toApiError } from './errors.ts';
import { EVENT_STREAM_TYPE, EventStream } from './event-stream.ts';
import type { StreamErrorEvent, StreamOutputEvent, StreamStartEvent } from './execute-events.ts';
import { describeIssues, ExecuteRequestSchema, maxRequestBodyBytes, type ExecuteRequest } from './execute-request.ts';
import { trackExecution } from './execution-log.ts';
import type { ExecuteResponseData, ExecutionService, LiveExecution } from './execution-service.ts';
import { envFromHeaders } from './header-env.ts';
import { bindRequestSecrets } from './request-secrets.ts';
import type { SecretBinding } from '../policies/index.ts';
import { resolveCaller, type Caller, type Identity, type PolicyLookup, type VerifiedToken } from './identity/index.ts';
import type { Logger } from './logger.ts';
import type { ServiceMetrics } from './metrics.ts';
import { executeRateLimit } from './rate-limit.ts';
import type { Drain } from './shutdown.ts';

export const EXECUTE_PATH = '/execute';

/** The state of one /execute request, filled in by the steps in order. */
export interface ExecuteLocals {
  /** authenticate: the verified token; null for a caller without one. */
  token?: VerifiedToken | null;
  /** validate: the request as the schema reads it, header env merged in. */
  request?: ExecuteRequest;
  /** resolve the policy: who calls and under which policy. */
  caller?: Caller;
  /** bind secrets: the execution's secrets (values for the proxy only; the program gets placeholders). */
  secrets?: SecretBinding;
  /** execute: the response's `data`. */
  data?: ExecuteResponseData;
  /** execute: the event stream, when the caller asked for one (Accept: text/event-stream). */
  events?: EventStream;
}

type ExecuteResponse = Response<unknown, ExecuteLocals>;
type Step = (req: Request, res: ExecuteResponse, next: NextFunction) => void | Promise<void>;

export interface ExecuteRouteDependencies {
  config: Pick<Config, 'EXEC_MAX_CODE_BYTES' | 'EXEC_FILES_MAX_BYTES' | 'EXEC_FILES_MAX_COUNT' | 'RATE_LIMIT_WINDOW_MS' | 'RATE_LIMIT_SUBJECT_MAX' | 'RATE_LIMIT_IP_MAX'> & Partial<Pick<Config, 'EXEC_STREAM_HEARTBEAT_MS'>>;
  logger: Logger;
  executions: Pick<ExecutionService, 'execute'>;
  metrics: ServiceMetrics;
  /** Refuses new executions once shutdown begins. */
  drain: Drain;
  /** Verifies the bearer token (TokenError on a bad one; null without one). */
  authenticate: Identity['authenticate'];
  /** The caller's policy, by their verified token. */
  policies: PolicyLookup;
  /** Seals the answers of requests with `encrypt_messages`; unset, such requests get 400. */
  encryptor?: ResponseEncryptor;
  /** The per-caller execution limit, when another route shares it (built from config otherwise). */
  executeLimit?: RequestHandler;
}

/** A step ran before the one that provides its input: a bug in this file, never the client's doing. */
function stateOf<K extends keyof ExecuteLocals>(res: ExecuteResponse, key: K): Exclude<ExecuteLocals[K], undefined> {
  const value = res.locals[key];
  if (value === undefined) throw new Error(`/execute pipeline: ${key} is not set yet`);
  return value as Exclude<ExecuteLocals[K], undefined>;
}

/** Read before validation, so that even the refusal of an invalid request is sealed. */
const asksForSealing = (body: unknown): boolean => (body as { encrypt_messages?: unknown } | undefined)?.encrypt_messages === true;

/** The caller asked for Server-Sent Events rather than (or over) JSON. */
export const wantsEventStream = (req: Request): boolean => req.accepts(['application/json', EVENT_STREAM_TYPE]) === EVENT_STREAM_TYPE;

const DEFAULT_HEARTBEAT_MS = 15_000;

/** The per-caller execution limit; it reads the subject `authenticate` left on `res.locals.token`. */
export function executeLimitFor(config: ExecuteRouteDependencies['config']): RequestHandler {
  return executeRateLimit({
    windowMs: config.RATE_LIMIT_WINDOW_MS,
    subjectMax: config.RATE_LIMIT_SUBJECT_MAX,
    ipMax: config.RATE_LIMIT_IP_MAX,
    subjectOf: (_req, res: ExecuteResponse) => stateOf(res, 'token')?.subject,
  });
}

/** The run's events, as the execution service reports them. */
function liveEvents(events: EventStream): LiveExecution {
  return {
    started: (executionId) => events.send('start', { executionId } satisfies StreamStartEvent),
    output: (stream, text) => events.send(stream, { text } satisfies StreamOutputEvent),
    network: (entry) => events.send('network', entry),
  };
}

/** The error body the JSON answer would have had, with the status it would have had, for an `error` event. */
function streamedError(req: Request, error: unknown): StreamErrorEvent {
  const apiError = toApiError(error);
  if (apiError === null) {
    req.log?.error({ err: error }, 'unhandled error in a streamed execution');
    return { success: false, error: 'Internal error', code: 'INTERNAL', status: 500 };
  }
  if (apiError.status >= 500) req.log?.warn({ err: error, code: apiError.code }, apiError.message);
  return { ...apiError.body(), status: apiError.status };
}

export function executeRouter(deps: ExecuteRouteDependencies): Router {
  const { config, encryptor } = deps;
  // The body limit leaves room for JSON escaping of the largest code allowed;
  // the code size itself is checked after parsing so the answer can name it.
  const parseJson = express.json({ limit: maxRequestBodyBytes(config), strict: true, type: () => true });
  // Resolves true once the body is parsed, false when it cannot be read (its error is answered by readBody, not here).
  const bodyReadable = (req: Request, res: Response): Promise<boolean> =>
    new Promise((resolve) => {
      parseJson(req, res, (error?: unknown) => resolve(error === undefined));
    });
  const seal = (req: Request, res: Response, sealer: ResponseEncryptor): void => {
    sealJsonResponses(res, sealer, (err) => req.log?.error({ err }, 'response encryption failed'));
  };

  /**
   * Identity first: a bad token is the answer even when the body is broken
   * too, and it is given at once. The body is read first only to learn
   * whether that answer must be sealed; a body that cannot be read, or a
   * server without a key, leaves it plain.
   */
  const authenticate: Step = async (req, res, next) => {
    try {
      res.locals.token = await deps.authenticate(req.get('authorization'));
    } catch (error) {
      if ((await bodyReadable(req, res)) && encryptor !== undefined && asksForSealing(req.body)) seal(req, res, encryptor);
      throw error;
    }
    next();
  };

  /**
   * Only `application/json`: a web page can send `text/plain` (or a form)
   * cross-site without a CORS preflight, so accepting it would let any page
   * a user visits run code through a local service.
   */
  const requireJson: Step = (req, _res, next) => {
    const type = (req.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be application/json (got ${JSON.stringify(req.get('content-type') ?? '')})`, [
        { field: 'header content-type', message: 'must be application/json' },
      ]);
    }
    next();
  };

  const readBody: RequestHandler = parseJson;

  /**
   * A sealed answer is one JWE over the whole body, which a stream of
   * events does not have: the caller picks one or the other.
   */
  const decideSealing: Step = (req, res, next) => {
    if (asksForSealing(req.body) && wantsEventStream(req)) {
      throw new ApiError(400, 'ENCRYPTION_NOT_STREAMABLE', 'encrypt_messages cannot be combined with Accept: text/event-stream; ask for one or the other', [
        { field: 'encrypt_messages', message: 'not available with a streamed response' },
      ]);
    }
    if (asksForSealing(req.body)) {
      if (encryptor === undefined) {
        throw new ApiError(400, 'ENCRYPTION_UNAVAILABLE', 'encrypt_messages was requested but this server has no RESPONSE_ENCRYPTION_KEY configured', [
          { field: 'encrypt_messages', message: 'not available on this server' },
        ]);
      }
      seal(req, res, encryptor);
    }
    next();
  };

  const rateLimit = deps.executeLimit ?? executeLimitFor(config);

  const validate: Step = (req, res, next) => {
    if (req.body === undefined || typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) {
      throw badRequest('Request body must be a JSON object', [{ field: '(body)', message: 'expected a JSON object' }]);
    }
    const parsed = ExecuteRequestSchema.safeParse(req.body);
    if (!parsed.success) {
      const details = describeIssues(parsed.error);
      throw badRequest(`Invalid request: ${details.map((d) => `${d.field}: ${d.message}`).join('; ')}`, details);
    }
    const request = parsed.data;
    const codeBytes = Buffer.byteLength(request.code);
    if (codeBytes > config.EXEC_MAX_CODE_BYTES) {
      throw new ApiError(413, 'CODE_TOO_LARGE', `code is ${codeBytes} bytes; the limit is ${config.EXEC_MAX_CODE_BYTES}`, [
        { field: 'code', message: 'too large' },
      ]);
    }
    const headerEnv = envFromHeaders(req.headersDistinct);
    if (!headerEnv.ok) {
      throw badRequest(`Invalid request: ${headerEnv.problems.map((d) => `${d.field}: ${d.message}`).join('; ')}`, headerEnv.problems);
    }
    // The body wins over a header of the same name. Secret values stay out of the request: bindSecrets reads them.
    const { secrets: _values, ...plain } = request;
    res.locals.request = { ...plain, env: { ...headerEnv.env, ...request.env } };
    next();
  };

  const resolvePolicy: Step = async (req, res, next) => {
    res.locals.caller = await resolveCaller(stateOf(res, 'token'), deps.policies, req.log);
    next();
  };

  /** Before any container exists: a refused secret is a 400 naming its field. */
  const bindSecrets: Step = (req, res, next) => {
    const body = req.body as { secrets?: unknown };
    res.locals.secrets = bindRequestSecrets(stateOf(res, 'caller'), body.secrets, req.headersDistinct, stateOf(res, 'request').env);
    next();
  };

  const execute: Step = async (req, res, next) => {
    const request = stateOf(res, 'request');
    const caller = stateOf(res, 'caller');
    const secrets = stateOf(res, 'secrets');
    // A caller that goes away while queued gives its place up.
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    // One caller may not hold every execution slot: subjects by name, anonymous callers by address.
    const holder = caller.subject === undefined ? `ip:${ipKeyGenerator(req.ip ?? 'unknown')}` : `sub:${caller.subject}`;
    // Streamed, the run also dies with its caller (the signal reaches the sandbox).
    const events = wantsEventStream(req) ? new EventStream(res, config.EXEC_STREAM_HEARTBEAT_MS ?? DEFAULT_HEARTBEAT_MS) : undefined;
    res.locals.events = events;
    const live = events === undefined ? {} : { live: liveEvents(events) };
    try {
      res.locals.data = await trackExecution(req.log ?? deps.logger, deps.metrics, request, caller, () =>
        deps.drain.run(() => deps.executions.execute(request, caller, { signal: gone.signal, holder, secrets, ...live })),
        secrets.names,
      );
    } catch (error) {
      // Before the stream opened the usual JSON error (with its status) can still be given.
      if (events === undefined || !events.opened) throw error;
      events.finish('error', streamedError(req, error));
      return;
    }
    next();
  };

  const answer: Step = (_req, res) => {
    const body = { success: true, data: stateOf(res, 'data') };
    if (res.locals.events === undefined) res.json(body);
    else res.locals.events.finish('result', body);
  };

  const router = Router();
  router.post(EXECUTE_PATH, requireJson, authenticate, readBody, decideSealing, rateLimit, validate, resolvePolicy, bindSecrets, execute, answer);
  return router;
}
