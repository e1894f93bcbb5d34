/**
 * The API's end of the control channel to a standalone egress proxy
 * (control-protocol.ts). Every call is bounded by a timeout: a proxy that
 * hangs must fail an execution, not hold it forever.
 */
import type { CompiledPolicy, Policy, SecretBinding } from '../policies/index.ts';
import {
  CONTROL_PATHS,
  ControlErrorBodySchema,
  MIN_CONTROL_SECRET_LENGTH,
  NetworkLogResultSchema,
  type OpenSessionBody,
} from './control-protocol.ts';
import type { NetworkLogResult } from './types.ts';

export interface ControlClientOptions {
  /** Base URL of the proxy's control API, e.g. `http://egress-proxy:8080`. */
  url: string;
  secret: string;
  /** Per call (default 5000). */
  timeoutMs?: number;
}

/** The proxy answered with an error, or could not be reached (`status` 0). */
export class ControlChannelError extends Error {
  override readonly name = 'ControlChannelError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface RemoteSession {
  close(): Promise<NetworkLogResult>;
}

export class ControlClient {
  readonly #base: URL;
  readonly #authorization: string;
  readonly #timeoutMs: number;

  constructor(options: ControlClientOptions) {
    if (options.secret.length < MIN_CONTROL_SECRET_LENGTH) {
      throw new RangeError(`the control secret must be at least ${MIN_CONTROL_SECRET_LENGTH} characters`);
    }
    this.#base = new URL(options.url);
    this.#authorization = `Bearer ${options.secret}`;
    this.#timeoutMs = options.timeoutMs ?? 5000;
  }

  /** Resolves once the proxy listens on `socketPath` (with `ca.pem` beside it). */
  async openSession(request: { executionId: string; socketPath: string; policy: Policy; secrets?: SecretBinding }): Promise<RemoteSession> {
    const { secrets, ...rest } = request;
    // The one place secret values are serialised: this authenticated channel, to the proxy.
    const body: OpenSessionBody = secrets === undefined || secrets.size === 0 ? rest : { ...rest, secrets: secrets.toWire() };
    await this.#call('POST', CONTROL_PATHS.sessions, body);
    const path = `${CONTROL_PATHS.sessions}/${encodeURIComponent(request.executionId)}`;
    return {
      close: async () => NetworkLogResultSchema.parse(await (await this.#call('DELETE', path)).json()),
    };
  }

  async caCertPem(): Promise<string> {
    return (await this.#call('GET', CONTROL_PATHS.caPem)).text();
  }

  /** True when the proxy answers its health check; never throws. */
  async healthy(): Promise<boolean> {
    try {
      const response = await fetch(new URL(CONTROL_PATHS.healthz, this.#base), { signal: AbortSignal.timeout(this.#timeoutMs) });
      await response.body?.cancel();
      return response.ok;
    } catch {
      return false;
    }
  }

  async #call(method: string, path: string, body?: unknown): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.#base), {
        method,
        headers: { authorization: this.#authorization, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw new ControlChannelError(0, 'unreachable', `egress control channel ${this.#base.origin} unreachable`, { cause: err });
    }
    if (response.ok) return response;
    const text = await response.text();
    let parsed: ReturnType<typeof ControlErrorBodySchema.safeParse> | undefined;
    try {
      parsed = ControlErrorBodySchema.safeParse(JSON.parse(text));
    } catch {
      parsed = undefined;
    }
    const detail = parsed?.success ? `${parsed.data.error}${parsed.data.details ? `: ${parsed.data.details.join('; ')}` : ''}` : text.slice(0, 200);
    throw new ControlChannelError(response.status, parsed?.success ? parsed.data.code : 'http_error', `${method} ${path} answered ${response.status}: ${detail}`);
  }
}

/**
 * A standalone proxy service seen the way the in-process EgressProxy is:
 * sessions open with the compiled policy as their context (its internal
 * Policy JSON travels, and the proxy compiles it again on its side), and
 * the CA certificate is a promise, fetched once it is there. The socket
 * path must be one the proxy sees at the same place (a shared directory).
 * The proxy outlives this process, so close() closes nothing there: every
 * session is closed by its execution, and the proxy expires any abandoned.
 */
export class RemoteEgressProxy {
  #caCert: Promise<string> | undefined;

  constructor(private readonly client: ControlClient) {}

  openSession(request: { executionId: string; socketPath: string; context: CompiledPolicy; secrets?: SecretBinding }): Promise<RemoteSession> {
    return this.client.openSession({
      executionId: request.executionId,
      socketPath: request.socketPath,
      policy: request.context.policy,
      ...(request.secrets === undefined ? {} : { secrets: request.secrets }),
    });
  }

  /** A failed fetch is asked again next time. */
  caCertificate(): Promise<string> {
    this.#caCert ??= this.client.caCertPem().catch((error: unknown) => {
      this.#caCert = undefined;
      throw error;
    });
    return this.#caCert;
  }

  ready(): Promise<boolean> {
    return this.client.healthy();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
