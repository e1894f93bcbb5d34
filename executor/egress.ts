/**
 * The seam between a sandbox and its egress route. The executor defines it;
 * the egress proxy implements it (in-process or as its own service), and the
 * server wires the two, so the executor never knows which proxy it talks to.
 *
 * Every sandbox gets a host directory bind-mounted read-only at
 * SANDBOX_EGRESS_DIR. The egress session creates its Unix socket there
 * (`proxy.sock`) and the CA certificate sits beside it (`ca.pem`); the
 * in-sandbox agent forwards 127.0.0.1:3128 to the socket. A container made
 * ahead of time (warm pool) therefore has no route out until a session
 * creates the socket in its directory.
 */
import type { CompiledPolicy, SecretBinding } from '../policies/index.ts';

export const SANDBOX_EGRESS_DIR = '/run/egress';
/** File names inside the egress directory, the same on the host and in the sandbox. */
export const PROXY_SOCKET_FILE = 'proxy.sock';
export const CA_CERT_FILE = 'ca.pem';
export const SANDBOX_PROXY_SOCKET = `${SANDBOX_EGRESS_DIR}/${PROXY_SOCKET_FILE}`;
export const SANDBOX_CA_CERT = `${SANDBOX_EGRESS_DIR}/${CA_CERT_FILE}`;
export const SANDBOX_PROXY_URL = 'http://127.0.0.1:3128';

/** Environment every sandboxed program gets so ordinary clients use the proxy and trust its CA. */
export const SANDBOX_PROXY_ENV: Readonly<Record<string, string>> = {
  HTTP_PROXY: SANDBOX_PROXY_URL,
  HTTPS_PROXY: SANDBOX_PROXY_URL,
  http_proxy: SANDBOX_PROXY_URL,
  https_proxy: SANDBOX_PROXY_URL,
  NO_PROXY: '',
  no_proxy: '',
  NODE_USE_ENV_PROXY: '1',
  NODE_EXTRA_CA_CERTS: SANDBOX_CA_CERT,
  SSL_CERT_FILE: SANDBOX_CA_CERT,
  REQUESTS_CA_BUNDLE: SANDBOX_CA_CERT,
  CURL_CA_BUNDLE: SANDBOX_CA_CERT,
  PIP_CERT: SANDBOX_CA_CERT,
};

/** One entry of a sandbox's network log, as the egress proxy records it (DESIGN §6). */
export interface NetworkLogEntry {
  method: string;
  url: string;
  hostname: string;
  statusCode: number;
  blocked: boolean;
  reason?: string;
  /** Learn mode: let through, though the enforcing policy would block it (for `reason`). */
  wouldBlock?: true;
  durationMs: number;
  /** Names of the secrets the proxy substituted into this request; absent when none. */
  secrets?: string[];
}

/** What a closed egress session hands back: every request the sandbox made, in order. */
export interface NetworkLog {
  entries: NetworkLogEntry[];
  /** True when requests were left out of `entries` at the per-session cap. */
  capped: boolean;
}

export interface EgressSessionRequest {
  executionId: string;
  /** Absolute host path of the Unix socket to listen on: `<sandbox's egress directory>/proxy.sock`. */
  socketPath: string;
  /** What the proxy enforces for every request of this session. */
  context: CompiledPolicy;
  /**
   * The execution's secrets, values included: for the proxy alone. The
   * sandbox only ever sees their placeholders (in the job's env).
   */
  secrets?: SecretBinding;
  /**
   * Handed each network-log entry once it is complete, while the session
   * runs (a live view; entries past the log's cap are not). A proxy that
   * cannot report live (a standalone service) never calls it: the closed
   * session's log is then the only account.
   */
  onEntry?: (entry: NetworkLogEntry) => void;
}

export interface EgressSession {
  /** Stops the session, removes its socket and hands back the network log. */
  close(): Promise<NetworkLog>;
}

/**
 * The executor's one way out to the egress proxy, handed to it once in its
 * options. The proxy in this process and the client of a standalone proxy
 * service both fit it as they are (structurally: egress-proxy/ never imports
 * the executor), so the executor never learns which one it talks to.
 */
export interface EgressPort {
  /**
   * The CA certificate (PEM) the proxy's interception chains to. Public and
   * the same for every sandbox: the executor places it before the container
   * starts, so a runtime started ahead of its job trusts it from the outset.
   */
  caCertificate(): Promise<string>;
  /** Resolves once the session listens on `socketPath` (with `ca.pem` beside it). */
  openSession(request: EgressSessionRequest): Promise<EgressSession>;
}
