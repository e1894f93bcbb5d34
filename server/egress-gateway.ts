/**
 * How the server gets an egress session for a sandbox, whichever way the
 * proxy is deployed: in this process (the default, `npm start`) or as its own
 * service reached over an authenticated control channel (compose). The
 * execution service holds an EgressGateway and never learns which.
 */
import type { EgressProxy, NetworkLogResult } from '../egress-proxy/index.ts';
import type { CompiledPolicy } from '../policies/index.ts';

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

  ready(): Promise<boolean> {
    return Promise.resolve(true);
  }

  close(): Promise<void> {
    return this.proxy.close();
  }
}
