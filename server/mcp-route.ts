/**
 * `POST /mcp`: the Model Context Protocol over Streamable HTTP, stateless (a
 * server and transport per request, JSON answers), for agent frameworks.
 *
 *   JSON only? → authenticate → read the body → rate-limit tool executions → MCP
 *
 * The bearer token is the one `/execute` takes and is checked the same way
 * (none: the default policy; a bad one: 401 with WWW-Authenticate). Tools
 * run through the same execution service, admission, drain, audit and
 * metrics as `/execute`; only the shape of the answer differs.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import express, { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { ipKeyGenerator } from 'express-rate-limit';
import { ApiError, badRequest } from './errors.ts';
import { maxRequestBodyBytes, type ExecuteRequest } from './execute-request.ts';
import type { ExecuteLocals, ExecuteRouteDependencies } from './execute-route.ts';
import { trackExecution } from './execution-log.ts';
import { envFromHeaders } from './header-env.ts';
import { resolveCaller, type Caller } from './identity/index.ts';
import { CheckEgressInputSchema, ExecuteToolInputSchema, MCP_PATH } from './mcp-schemas.ts';
import { checkEgress, describeEgressCheck, describeExecution, describePolicy, EgressUrlError, policyDescription } from './mcp-text.ts';
import { bindRequestSecrets } from './request-secrets.ts';

export interface McpRouteDependencies extends ExecuteRouteDependencies {
  /** The limiter `/execute` uses, so both count against one budget per caller. */
  executeLimit: RequestHandler;
}

type McpResponse = Response<unknown, ExecuteLocals>;

interface JsonRpcCall {
  method?: unknown;
  params?: { name?: unknown };
}

/** How many `tools/call` of `execute` a JSON-RPC message (or batch) holds. */
function executeCallsIn(body: unknown): number {
  const messages: unknown[] = Array.isArray(body) ? body : [body];
  return messages.filter((m) => {
    const call = m as JsonRpcCall | null;
    return call !== null && typeof call === 'object' && call.method === 'tools/call' && call.params?.name === 'execute';
  }).length;
}

const text = (body: string): CallToolResult['content'] => [{ type: 'text', text: body }];

/** A refusal the HTTP API would answer with a status becomes a tool error the model can read. */
function toolError(error: unknown): CallToolResult {
  if (error instanceof ApiError) return { isError: true, content: text(`${error.code}: ${error.message}`) };
  if (error instanceof EgressUrlError) return { isError: true, content: text(error.message) };
  throw error;
}

export function mcpRouter(deps: McpRouteDependencies): Router {
  const { config } = deps;
  const parseJson = express.json({ limit: maxRequestBodyBytes(config), strict: false, type: () => true });

  /** Same reasoning as /execute: a page may post text/plain cross-site without a preflight. */
  const requireJson: RequestHandler = (req, _res, next) => {
    const type = (req.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      throw new ApiError(415, 'UNSUPPORTED_MEDIA_TYPE', `Content-Type must be application/json (got ${JSON.stringify(req.get('content-type') ?? '')})`, [
        { field: 'header content-type', message: 'must be application/json' },
      ]);
    }
    next();
  };

  const authenticate = async (req: Request, res: McpResponse, next: NextFunction): Promise<void> => {
    res.locals.token = await deps.authenticate(req.get('authorization'));
    next();
  };

  /** Only tool executions count against the execution limit; listing tools or checking a URL does not. */
  const rateLimit = (req: Request, res: McpResponse, next: NextFunction): void => {
    const calls = executeCallsIn(req.body);
    if (calls === 0) {
      next();
      return;
    }
    if (calls > 1) throw badRequest('One execute call per request', [{ field: '(body)', message: 'a batch may hold at most one execute call' }]);
    deps.executeLimit(req, res, next);
  };

  const serve = async (req: Request, res: McpResponse): Promise<void> => {
    const token = res.locals.token ?? null;
    let resolved: Promise<Caller> | undefined;
    const caller = (): Promise<Caller> => (resolved ??= resolveCaller(token, deps.policies, req.log));
    const gone = new AbortController();
    res.once('close', () => gone.abort());

    const server = new McpServer({ name: 'sandbox', version: '1.0.0' });
    server.registerTool(
      'execute',
      {
        description:
          'Run a program in a sandbox. Its network traffic goes through an egress proxy that enforces your policy; ' +
          'the answer gives stdout, stderr, the exit and every request the program made, allowed or blocked and why.',
        inputSchema: ExecuteToolInputSchema,
      },
      async (input) => {
        try {
          const codeBytes = Buffer.byteLength(input.code);
          if (codeBytes > config.EXEC_MAX_CODE_BYTES) {
            throw new ApiError(413, 'CODE_TOO_LARGE', `code is ${codeBytes} bytes; the limit is ${config.EXEC_MAX_CODE_BYTES}`);
          }
          const headerEnv = envFromHeaders(req.headersDistinct);
          if (!headerEnv.ok) throw badRequest(`Invalid request: ${headerEnv.problems.map((d) => `${d.field}: ${d.message}`).join('; ')}`, headerEnv.problems);
          const request: ExecuteRequest = { ...input, env: headerEnv.env, encrypt_messages: false };
          const who = await caller();
          // Credentials come as X-Secret-* headers of the MCP request, bound by the caller's policy as for /execute.
          const secrets = bindRequestSecrets(who, undefined, req.headersDistinct, request.env);
          const holder = who.subject === undefined ? `ip:${ipKeyGenerator(req.ip ?? 'unknown')}` : `sub:${who.subject}`;
          const data = await trackExecution(req.log ?? deps.logger, deps.metrics, request, who, () =>
            deps.drain.run(() => deps.executions.execute(request, who, { signal: gone.signal, holder, secrets })),
            secrets.names,
          );
          return { content: text(describeExecution(data)), structuredContent: { ...data } };
        } catch (error) {
          return toolError(error);
        }
      },
    );
    server.registerTool(
      'check_egress',
      {
        description: 'Would the egress proxy let this request out under your policy? Answers allowed or blocked, the reason and the rule that decided.',
        inputSchema: CheckEgressInputSchema,
      },
      async ({ method, url }) => {
        try {
          const check = checkEgress(await caller(), method, url);
          return { content: text(describeEgressCheck(method, url, check)), structuredContent: { ...check } };
        } catch (error) {
          return toolError(error);
        }
      },
    );
    server.registerTool(
      'describe_policy',
      { description: 'Your effective policy in plain words: domains, path rules, packages, binaries, secret names and their hosts (never values), enforcement mode.' },
      async () => {
        const description = policyDescription(await caller());
        return { content: text(describePolicy(description)), structuredContent: { ...description } };
      },
    );

    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.once('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, req.body);
  };

  /** Stateless: no event stream to open with GET, no session to end with DELETE. */
  const notAllowed = (_req: Request, res: Response): void => {
    res.setHeader('Allow', 'POST');
    res.status(405).json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed: this server is stateless; POST JSON-RPC messages' }, id: null });
  };

  const router = Router();
  router.post(MCP_PATH, requireJson, authenticate, parseJson, rateLimit, serve);
  router.get(MCP_PATH, notAllowed);
  router.delete(MCP_PATH, notAllowed);
  return router;
}
