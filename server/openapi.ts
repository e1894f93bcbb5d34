/**
 * `GET /openapi.json`: the HTTP API as OpenAPI 3.1, generated from the zod
 * schemas the server validates and answers with, so the document cannot
 * drift from the code. OpenAPI 3.1 speaks JSON Schema 2020-12, which is what
 * zod emits.
 */
import { readFileSync } from 'node:fs';
import { Router } from 'express';
import { z } from 'zod';
import { PLAYGROUND_SCHEMAS, playgroundPaths } from './admin-playground.ts';
import { AUDIT_SCHEMAS, auditPaths } from './audit/openapi-paths.ts';
import { ExecuteRequestSchema } from './execute-request.ts';
import { StreamErrorEventSchema, StreamOutputEventSchema, StreamStartEventSchema } from './execute-events.ts';
import { EncryptedResponseSchema, ErrorBodySchema, ExecuteSuccessSchema, NetworkLogEntrySchema } from './execute-response.ts';
import { ENV_HEADER_PREFIX, MAX_HEADER_ENV_VALUE_BYTES, MAX_HEADER_ENV_VARS } from './header-env.ts';
import { CheckEgressInputSchema, ExecuteToolInputSchema, MCP_PATH, MCP_TOOL_NAMES } from './mcp-schemas.ts';
import { METRICS_PATH } from './metrics.ts';

export const OPENAPI_PATH = '/openapi.json';

type JsonObject = Record<string, unknown>;

/** A component schema: the request as clients write it (defaults optional), the answers as the server sends them. */
function schemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as JsonObject;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: JsonObject) => ({ 'application/json': { schema } });
const errorOrEncrypted = { oneOf: [ref('ErrorBody'), ref('EncryptedResponse')] };
const retryAfter = {
  'Retry-After': { description: 'seconds to wait before trying again', schema: { type: 'integer' } },
};
const rateLimitHeaders = {
  'RateLimit-Limit': { description: 'requests allowed per window for this caller', schema: { type: 'integer' } },
  'RateLimit-Remaining': { description: 'requests left in the current window', schema: { type: 'integer' } },
  'RateLimit-Reset': { description: 'seconds until the window resets', schema: { type: 'integer' } },
  'RateLimit-Policy': { description: 'the limit and its window, e.g. `60;w=60`', schema: { type: 'string' } },
};
const requestId = { 'X-Request-Id': { description: 'identifies the request in the logs (echoed when the client sent a valid one)', schema: { type: 'string' } } };

/** The streamed answer: OpenAPI 3.1 cannot type the events of a stream, so an extension maps each event name to its data's schema. */
const eventStream = {
  'text/event-stream': {
    schema: {
      type: 'string',
      description:
        'Server-Sent Events, each `event: <name>` with one `data:` line of JSON: `start`, then `stdout`, `stderr` and `network` as they happen, ' +
        'heartbeat comments (`: heartbeat`) every EXEC_STREAM_HEARTBEAT_MS, and last `result` (the plain call\'s body) or `error`.',
    },
    'x-events': {
      start: ref('StreamStartEvent'),
      stdout: ref('StreamOutputEvent'),
      stderr: ref('StreamOutputEvent'),
      network: ref('NetworkLogEntry'),
      result: ref('ExecuteSuccess'),
      error: ref('StreamErrorEvent'),
    },
  },
};

const errorResponse = (description: string, headers: JsonObject = {}) => ({
  description,
  headers: { ...requestId, ...headers },
  content: json(errorOrEncrypted),
});

export function openApiDocument(version: string): JsonObject {
  return {
    openapi: '3.1.0',
    info: {
      title: 'sandbox-egress',
      version,
      description: 'Runs untrusted code in single-use, network-less containers whose only route out is an egress proxy enforcing the caller’s policy.',
    },
    paths: {
      '/execute': {
        post: {
          operationId: 'execute',
          summary: 'Run a program in a fresh sandbox',
          description:
            `Environment variables may also come from \`X-Env-NAME: value\` headers (at most ${MAX_HEADER_ENV_VARS}, values up to ${MAX_HEADER_ENV_VALUE_BYTES} bytes of UTF-8): ` +
            `the name is the part after \`${ENV_HEADER_PREFIX}\`, upper-cased, with \`-\` read as \`_\`; the body's \`env\` wins over a header of the same name; ` +
            'proxy and CA variables are refused. Credentials go in `secrets` (or `X-Secret-NAME: value` headers, named the same way; the body wins): ' +
            'the program\'s variable holds a placeholder, the egress proxy substitutes the value only toward the hosts the caller\'s policy binds the secret to ' +
            '(400 SECRET_NOT_DECLARED, SECRET_HOST_NOT_ALLOWED, SECRET_WITHOUT_POLICY, SECRET_LIMIT, SECRET_TOO_LARGE, SECRET_ALSO_IN_ENV otherwise, naming the field). ' +
            'Files: `files` are written into the program\'s working directory (`/tmp/work`, its cwd) before it starts; a path that is absolute, ' +
            'climbs out (`..`), repeats another or is not base64 is a 400 naming it (`files[0].path`, `files[0].content`), as are more files or more bytes than the server ' +
            'allows (`files`). `outputFiles` globs pick the regular files returned in `data.files` after the program exits (links are never followed), ' +
            'at most the server\'s count and bytes, `truncated.files` telling when some were left out. ' +
            'With `encrypt_messages: true` every answer from the point the body is read on, errors included, is ' +
            '`{ "encrypted": true, "data": "<compact JWE>" }` (alg `dir`, enc `A256GCM`); answers given before the body could be read (malformed JSON, too large) are plain. ' +
            'With `Accept: text/event-stream` the run is streamed as Server-Sent Events (see the 200 answer): the stream opens once the execution has its slot, so ' +
            'every refusal before then is the usual JSON error with its status, and a failure after it is a final `error` event. Closing the connection kills the program ' +
            'and removes its sandbox. `encrypt_messages` cannot be streamed (400 ENCRYPTION_NOT_STREAMABLE).',
          security: [{}, { bearer: [] }],
          requestBody: { required: true, content: json(ref('ExecuteRequest')) },
          responses: {
            200: {
              description: 'The program ran (whatever its exit code)',
              headers: { ...requestId, ...rateLimitHeaders },
              content: { ...json({ oneOf: [ref('ExecuteSuccess'), ref('EncryptedResponse')] }), ...eventStream },
            },
            400: errorResponse('Bad input; `details` names each bad field (or encryption asked for but not configured, or asked for with a streamed answer)'),
            401: errorResponse('Missing, malformed, expired, too long-lived (no exp, or beyond JWT_MAX_TOKEN_AGE) or unverifiable bearer token', {
              'WWW-Authenticate': { description: 'Bearer challenge with the error', schema: { type: 'string' } },
            }),
            403: errorResponse('HOST_NOT_ALLOWED: bound to loopback, the Host header names another site (DNS rebinding)'),
            413: errorResponse('Code or body too large'),
            415: errorResponse('Content-Type is not application/json, or the body is not UTF-8'),
            429: errorResponse(
              'RATE_LIMITED (per address before any work, per subject, or per address for anonymous callers), AUTH_FAILURES_LIMITED (too many refused tokens from this address) or CALLER_BUSY (the caller already holds its share of execution slots)',
              { ...retryAfter, ...rateLimitHeaders },
            ),
            503: errorResponse('No capacity, engine or image unavailable, or shutting down', retryAfter),
            500: errorResponse('Internal error; details only in the server log'),
          },
        },
      },
      [MCP_PATH]: {
        post: {
          operationId: 'mcp',
          summary: 'Model Context Protocol (Streamable HTTP, stateless, JSON answers)',
          description:
            `JSON-RPC 2.0 messages of the Model Context Protocol; tools: ${MCP_TOOL_NAMES.map((name) => `\`${name}\``).join(', ')}. ` +
            'Authentication as for `/execute`: no bearer token runs under the default policy, a bad one is a 401 before any message is read. ' +
            '`execute` takes the `McpExecuteInput` fields (cut from `ExecuteRequest`; `X-Env-*` and `X-Secret-*` headers of the MCP request apply as for `/execute`) ' +
            'and answers a readable summary with the `/execute` `data` as structured content; it counts against the same per-caller limit, admission queue, audit and metrics. ' +
            '`check_egress` (`McpCheckEgressInput`) answers whether the caller\'s policy would let one request out, why, and by which rule; ' +
            '`describe_policy` describes the caller\'s effective policy, secret names and hosts but never values. ' +
            'Clients send `Accept: application/json, text/event-stream`; no session is kept (GET and DELETE answer 405).',
          security: [{}, { bearer: [] }],
          requestBody: { required: true, content: json({ type: 'object', description: 'a JSON-RPC 2.0 request or notification' }) },
          responses: {
            200: { description: 'The JSON-RPC answer (tool failures are results with `isError`)', headers: requestId, content: json({ type: 'object' }) },
            202: { description: 'A notification, accepted', headers: requestId },
            400: errorResponse('More than one `execute` call in one batch'),
            401: errorResponse('Malformed, expired or unverifiable bearer token', {
              'WWW-Authenticate': { description: 'Bearer challenge with the error', schema: { type: 'string' } },
            }),
            403: errorResponse('HOST_NOT_ALLOWED: bound to loopback, the Host header names another site (DNS rebinding)'),
            415: errorResponse('Content-Type is not application/json'),
            429: errorResponse('RATE_LIMITED or AUTH_FAILURES_LIMITED, as for `/execute`', { ...retryAfter, ...rateLimitHeaders }),
          },
        },
      },
      '/healthz': { get: { operationId: 'health', summary: 'The process is alive', responses: { 200: { description: 'alive' } } } },
      '/readyz': {
        get: {
          operationId: 'ready',
          summary: 'Ready to run programs: engine reachable, images present, not shutting down',
          responses: { 200: { description: 'ready' }, 503: { description: 'not ready; `checks` says why' } },
        },
      },
      [METRICS_PATH]: {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics',
          responses: { 200: { description: 'text exposition format', content: { 'text/plain': { schema: { type: 'string' } } } } },
        },
      },
      [OPENAPI_PATH]: {
        get: { operationId: 'openapi', summary: 'This document', responses: { 200: { description: 'OpenAPI 3.1', content: json({ type: 'object' }) } } },
      },
      // Served only when ADMIN_TOKEN is set and the audit store is on.
      ...auditPaths(),
      // Served only when ADMIN_TOKEN is set.
      ...playgroundPaths(),
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        admin: { type: 'http', scheme: 'bearer', description: 'the ADMIN_TOKEN the service was started with' },
      },
      schemas: {
        ExecuteRequest: schemaOf(ExecuteRequestSchema, 'input'),
        McpExecuteInput: schemaOf(ExecuteToolInputSchema, 'input'),
        McpCheckEgressInput: schemaOf(CheckEgressInputSchema, 'input'),
        ExecuteSuccess: schemaOf(ExecuteSuccessSchema, 'output'),
        ErrorBody: schemaOf(ErrorBodySchema, 'output'),
        EncryptedResponse: schemaOf(EncryptedResponseSchema, 'output'),
        NetworkLogEntry: schemaOf(NetworkLogEntrySchema, 'output'),
        StreamStartEvent: schemaOf(StreamStartEventSchema, 'output'),
        StreamOutputEvent: schemaOf(StreamOutputEventSchema, 'output'),
        StreamErrorEvent: schemaOf(StreamErrorEventSchema, 'output'),
        ...AUDIT_SCHEMAS,
        ...PLAYGROUND_SCHEMAS,
      },
    },
  };
}

const packageVersion = (): string =>
  (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function openApiRouter(version: string = packageVersion()): Router {
  const router = Router();
  let document: string | undefined;
  router.get(OPENAPI_PATH, (_req, res) => {
    document ??= JSON.stringify(openApiDocument(version));
    res.type('application/json').send(document);
  });
  return router;
}
