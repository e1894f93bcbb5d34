/**
 * How the server gets an egress session for a sandbox, whichever way the
 * proxy is deployed: in this process (the default, `npm start`) or as its own
 * service reached over an authenticated control channel (compose). The
 * execution service holds an EgressGateway and never learns which.
 */
import { ControlClient, createPolicyEgressProxy, type DecisionObserver, type EgressProxy, type NetworkLogResult } from '../egress-proxy/index.ts';
import type { CompiledPolicy } from '../policies/index.ts';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';

export interface EgressSessionRequest {
  executionId: string;
  /** Absolute path of the Unix socket the session listens on (inside the sandbox's egress directory). */
  socketPath: string;
  /** What the proxy enforces for this session. */
  policy: CompiledPolicy;
}

export interface EgressSessionHandle {
  /** Stops the session, removes its socket and hands back the network log. */
  close(): Promise<NetworkLogResult>;
}

export interface EgressGateway {
  /** `inprocess` or `remote`, for logs and readiness. */
  readonly mode: 'inprocess' | 'remote';
  /** Listens on `socketPath` (with `ca.pem` beside it) before it resolves. */
  openSession(request: EgressSessionRequest): Promise<EgressSessionHandle>;
  /** The CA certificate (PEM) the proxy's interception certificates chain to. */
  caCertificate(): Promise<string>;
  /** Whether the proxy can take sessions right now (for /readyz). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}

/** The proxy in this process; the policy is already compiled, so it is handed over as is. */
export class InProcessEgressGateway implements EgressGateway {
  readonly mode = 'inprocess';

  constructor(private readonly proxy: EgressProxy<CompiledPolicy>) {}

  async openSession(request: EgressSessionRequest): Promise<EgressSessionHandle> {
    const session = await this.proxy.openSession({
      executionId: request.executionId,
      socketPath: request.socketPath,
      context: request.policy,
    });
    return { close: () => session.close() };
  }

  caCertificate(): Promise<string> {
    return Promise.resolve(this.proxy.caCertPem);
  }

  ready(): Promise<boolean> {
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    return this.proxy.close();
  }
}

/**
 * A standalone proxy service (`egress-proxy/main.ts`) over its control
 * channel. The policy travels as the internal Policy JSON and is compiled
 * again on the proxy's side; the socket path must be one the proxy sees at
 * the same place (a shared directory). The proxy outlives this server, so
 * closing the gateway closes nothing there: every session is closed by its
 * execution, and the proxy expires any this server abandoned.
 */
export class RemoteEgressGateway implements EgressGateway {
  readonly mode = 'remote';
  #caCert: Promise<string> | undefined;

  constructor(private readonly client: ControlClient) {}

  async openSession(request: EgressSessionRequest): Promise<EgressSessionHandle> {
    const session = await this.client.openSession({
      executionId: request.executionId,
      socketPath: request.socketPath,
      policy: request.policy.policy,
    });
    return { close: () => session.close() };
  }

  /** Fetched once it is there; a failed fetch is asked again next time. */
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

/** The gateway EGRESS_MODE asks for (config.ts has checked that remote mode has its URL and secret). */
export async function createEgressGateway(config: Config, logger: Logger, onDecision?: DecisionObserver): Promise<EgressGateway> {
  if (config.EGRESS_MODE === 'remote') {
    if (config.EGRESS_HOST_MAP !== undefined || config.EGRESS_UPSTREAM_CA !== undefined || config.EGRESS_UPSTREAM_PROXY !== undefined) {
      logger.warn('EGRESS_HOST_MAP, EGRESS_UPSTREAM_CA and EGRESS_UPSTREAM_PROXY are ignored with EGRESS_MODE=remote: set them on the egress proxy service');
    }
    const client = new ControlClient({ url: config.EGRESS_CONTROL_URL!, secret: config.EGRESS_CONTROL_SECRET! });
    const gateway = new RemoteEgressGateway(client);
    // Not fatal: compose starts the API after the proxy is healthy, and /readyz reports it meanwhile.
    if (!(await gateway.ready())) logger.warn({ url: config.EGRESS_CONTROL_URL }, 'egress proxy service is not answering yet');
    return gateway;
  }
  const proxy = await createPolicyEgressProxy(config, logger, onDecision === undefined ? {} : { onDecision });
  return new InProcessEgressGateway(proxy);
}
