/**
 * The control API of a standalone egress proxy (see control-protocol.ts):
 * node:http, a shared bearer secret, and sessions that may only listen in
 * the directory the proxy shares with the API, so a caller holding the
 * secret still cannot make the proxy create files anywhere else.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Registry } from 'prom-client';
import { compilePolicy, PolicyValidationError, SecretBinding, type CompiledPolicy } from '../policies/index.ts';
import {
  CONTROL_PATHS,
  ExecutionIdSchema,
  MIN_CONTROL_SECRET_LENGTH,
  OpenSessionBodySchema,
  type ControlErrorBody,
} from './control-protocol.ts';
import { EgressError } from './errors.ts';
import type { EgressSession } from './session.ts';
import type { EgressLogger } from './types.ts';

/**
 * What the control API needs of the proxy: its CA and opening sessions.
 * Named here rather than imported from the front door, which exports this
 * module (an EgressProxy fits it).
 */
export interface ControlledProxy {
  readonly caCertPem: string;
  openSession(options: { executionId: string; socketPath: string; context: CompiledPolicy; secrets?: SecretBinding }): Promise<EgressSession<CompiledPolicy>>;
}

export interface ControlServerOptions {
  proxy: ControlledProxy;
  /** The shared secret callers present as `Authorization: Bearer …`. */
  secret: string;
  /** The only directory sessions may listen in: `<sandboxesDir>/<sandbox>/<name>.sock`. */
  sandboxesDir: string;
  logger?: EgressLogger;
  /** A session the API never closed (it died mid-run) is closed after this long; its log is dropped. */
  sessionMaxMs?: number;
  /** Larger request bodies get 413 (a policy is a few KiB). */
  maxBodyBytes?: number;
  /** Served at GET /metrics when given. */
  metrics?: Registry;
}

const DEFAULT_SESSION_MAX_MS = 15 * 60_000;
const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
/** One path segment of the API's own making (the executor names sandbox directories after the execution id). */
const SAFE_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const SAFE_SOCKET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\.sock$/;
const SILENT: EgressLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Ends a control request with a status; `details` are safe to show (field problems, never internals). */
class ControlError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: readonly string[],
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

interface TrackedSession {
  session: EgressSession<CompiledPolicy>;
  expiry: NodeJS.Timeout;
}

export class ControlServer {
  readonly #options: Required<Omit<ControlServerOptions, 'logger' | 'metrics'>> & { logger: EgressLogger; metrics?: Registry };
  readonly #secretDigest: Buffer;
  readonly #sessions = new Map<string, TrackedSession>();
  readonly #server: http.Server;

  constructor(options: ControlServerOptions) {
    if (options.secret.length < MIN_CONTROL_SECRET_LENGTH) {
      throw new RangeError(`the control secret must be at least ${MIN_CONTROL_SECRET_LENGTH} characters`);
    }
    this.#options = {
      sessionMaxMs: DEFAULT_SESSION_MAX_MS,
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      ...options,
      sandboxesDir: path.resolve(options.sandboxesDir),
      logger: options.logger ?? SILENT,
    };
    this.#secretDigest = digest(options.secret);
    this.#server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    });
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Resolves with the URL once listening (port 0 picks a free port). */
  async listen(port: number, host: string): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const address = this.#server.address() as AddressInfo;
    const shown = address.address.includes(':') ? `[${address.address}]` : address.address;
    return `http://${shown}:${address.port}`;
  }

  /** Stops listening and closes every session still open (their logs are dropped). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    const open = [...this.#sessions.values()];
    this.#sessions.clear();
    await Promise.all(
      open.map(async ({ session, expiry }) => {
        clearTimeout(expiry);
        await session.close();
      }),
    );
    await closed;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://control.invalid');
    const method = req.method ?? 'GET';
    if (url.pathname === CONTROL_PATHS.healthz && method === 'GET') {
      send(res, 200, { ok: true, sessions: this.#sessions.size });
      return;
    }
    const metrics = this.#options.metrics;
    if (url.pathname === CONTROL_PATHS.metrics && method === 'GET' && metrics !== undefined) {
      const text = await metrics.metrics();
      res.writeHead(200, { 'content-type': metrics.contentType }).end(text);
      return;
    }
    this.#authenticate(req);
    if (url.pathname === CONTROL_PATHS.caPem && method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(this.#options.proxy.caCertPem);
      return;
    }
    if (url.pathname === CONTROL_PATHS.sessions && method === 'POST') {
      await this.#open(req, res);
      return;
    }
    const prefix = `${CONTROL_PATHS.sessions}/`;
    if (url.pathname.startsWith(prefix) && method === 'DELETE') {
      await this.#closeSession(decodeSegment(url.pathname.slice(prefix.length)), res);
      return;
    }
    throw new ControlError(404, 'not_found', `no route for ${method} ${url.pathname}`);
  }

  #authenticate(req: http.IncomingMessage): void {
    const match = /^Bearer ([^\s]+)$/.exec(req.headers.authorization ?? '');
    // Digests have equal length, so the comparison takes the same time for every wrong secret.
    if (match === null || !timingSafeEqual(digest(match[1]), this.#secretDigest)) {
      throw new ControlError(401, 'unauthorized', 'missing or wrong control secret');
    }
  }

  async #open(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const parsed = OpenSessionBodySchema.safeParse(await readJson(req, this.#options.maxBodyBytes));
    if (!parsed.success) {
      throw new ControlError(400, 'invalid_body', 'invalid session request', parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`));
    }
    const { executionId, policy } = parsed.data;
    const socketPath = await this.#checkSocketPath(parsed.data.socketPath);
    if (this.#sessions.has(executionId)) throw new ControlError(409, 'session_exists', `a session for ${executionId} is already open`);
    let compiled: CompiledPolicy;
    try {
      compiled = compilePolicy(policy);
    } catch (err) {
      if (err instanceof PolicyValidationError) throw new ControlError(400, 'invalid_policy', 'invalid policy', err.problems);
      throw err;
    }
    const secrets = parsed.data.secrets === undefined ? SecretBinding.EMPTY : SecretBinding.fromWire(parsed.data.secrets);
    const session = await this.#options.proxy.openSession({ executionId, socketPath, context: compiled, secrets });
    const expiry = setTimeout(() => {
      if (this.#sessions.get(executionId)?.session !== session) return;
      this.#sessions.delete(executionId);
      this.#options.logger.warn({ executionId }, 'egress session expired without being closed');
      void session.close();
    }, this.#options.sessionMaxMs);
    expiry.unref();
    this.#sessions.set(executionId, { session, expiry });
    this.#options.logger.info({ executionId, socketPath }, 'egress session opened');
    send(res, 201, { executionId, socketPath });
  }

  async #closeSession(rawId: string | null, res: http.ServerResponse): Promise<void> {
    const id = ExecutionIdSchema.safeParse(rawId);
    if (!id.success) throw new ControlError(400, 'invalid_execution_id', 'invalid execution id', [`executionId: ${id.error.issues[0]?.message ?? 'invalid'}`]);
    const tracked = this.#sessions.get(id.data);
    if (tracked === undefined) throw new ControlError(404, 'no_session', `no open session for ${id.data}`);
    this.#sessions.delete(id.data);
    clearTimeout(tracked.expiry);
    const log = await tracked.session.close();
    this.#options.logger.info({ executionId: id.data, requests: log.entries.length }, 'egress session closed');
    send(res, 200, log);
  }

  /**
   * Accepts exactly `<sandboxesDir>/<sandbox>/<name>.sock`, written without
   * `.`/`..` or repeated slashes, where `<sandbox>` is a real directory (not
   * a symlink leading elsewhere). The session writes `ca.pem` beside the
   * socket, so the directory is what must be trusted.
   */
  async #checkSocketPath(raw: string): Promise<string> {
    const bad = (why: string) => new ControlError(400, 'invalid_socket_path', 'invalid socket path', [`socketPath: ${why}`]);
    if (!path.isAbsolute(raw) || path.normalize(raw) !== raw) throw bad('must be an absolute, normalised path');
    const sandboxDir = path.dirname(raw);
    if (path.dirname(sandboxDir) !== this.#options.sandboxesDir) throw bad(`must be inside ${this.#options.sandboxesDir}/<sandbox>/`);
    if (!SAFE_SEGMENT.test(path.basename(sandboxDir)) || !SAFE_SOCKET_NAME.test(path.basename(raw))) {
      throw bad('must be <sandbox>/<name>.sock with plain names');
    }
    const stat = await fs.lstat(sandboxDir).catch(() => null);
    if (stat === null || !stat.isDirectory()) throw bad('its sandbox directory must exist and be a directory');
    return raw;
  }

  #fail(res: http.ServerResponse, err: unknown): void {
    let status = 500;
    let body: ControlErrorBody = { error: 'internal error', code: 'internal' };
    if (err instanceof ControlError) {
      status = err.status;
      body = { error: err.message, code: err.code, ...(err.details ? { details: [...err.details] } : {}) };
    } else if (err instanceof EgressError) {
      status = egressStatus(err);
      body = { error: err.message, code: err.code };
    }
    if (status >= 500) this.#options.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'control request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (status === 401) res.setHeader('www-authenticate', 'Bearer');
    send(res, status, body);
  }
}

function egressStatus(err: EgressError): number {
  switch (err.code) {
    case 'ERR_EGRESS_SOCKET_PATH':
      return 400;
    case 'ERR_EGRESS_SESSION_EXISTS':
      return 409;
    case 'ERR_EGRESS_CLOSED':
      return 503;
    default:
      return 500;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function decodeSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function readJson(req: http.IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ControlError(413, 'body_too_large', `request body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new ControlError(400, 'invalid_json', 'request body is not JSON');
  }
}
