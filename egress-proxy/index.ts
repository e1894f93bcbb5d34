/**
 * The front door of egress-proxy/: the policy-enforcing egress proxy
 * (DESIGN §6). Other modules import from here only.
 *
 *   const proxy = await EgressProxy.create({ decide, dataDir, hostMap });
 *   const session = await proxy.openSession({ executionId, socketPath, context: policy });
 *   // … the sandbox runs, reaching the proxy only through socketPath …
 *   const { entries, capped } = await session.close();
 *   await proxy.close();
 */
import { promises as fs } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { AddressGuard, parseCidr } from './address-guard.ts';
import type { Cidr } from './address-guard.ts';
import { loadOrCreateCa } from './ca.ts';
import type { CertificateAuthority } from './ca.ts';
import { CaptureAccounting, DEFAULT_CAPTURE_LIMITS } from './capture-budget.ts';
import type { CaptureLimits, CaptureStats } from './capture-budget.ts';
import { defaultCanonicalHost } from './canonical-host.ts';
import { EgressError } from './errors.ts';
import { HostMap, parseHostMap } from './host-map.ts';
import type { HostMapInput } from './host-map.ts';
import { LeafCertIssuer } from './leaf-certs.ts';
import type { LeafLimits } from './leaf-certs.ts';
import { MetadataReader } from './metadata-reader.ts';
import { EgressSession } from './session.ts';
import type { ProxyRuntime } from './runtime.ts';
import { parseUpstreamProxy } from './upstream-proxy.ts';
import type { UpstreamProxy } from './upstream-proxy.ts';
import type { EgressSettings } from './settings.ts';
import type { CanonicalHostFn, DecideFn, DecisionObserver, EgressLogger, LearnFn, NetworkLogEntry } from './types.ts';
import { canonicalHost, SecretBinding, sessionPackagePolicy, type CompiledPolicy } from '../policies/index.ts';

export { EgressSession } from './session.ts';
export { EgressError } from './errors.ts';
export type { EgressErrorCode, RefusalCode } from './errors.ts';
export { DEFAULT_LEAF_LIMITS } from './leaf-certs.ts';
export type { LeafLimits } from './leaf-certs.ts';
export { HostMap, parseHostMap } from './host-map.ts';
export { EGRESS_SETTINGS_SHAPE } from './settings.ts';
export type { EgressSettings } from './settings.ts';
export type { HostMapInput, MappedAddress } from './host-map.ts';
export { forbiddenAddressReason } from './address-guard.ts';
export { DECISION_LOG_MESSAGE, DECISION_LOG_SAMPLE_EVERY } from './exchange.ts';
export { BLOCKED_HEADER, ERROR_HEADER } from './responder.ts';
export { DEFAULT_CAPTURE_LIMITS } from './capture-budget.ts';
export type { CaptureLimits, CaptureStats } from './capture-budget.ts';
export { parseUpstreamProxy } from './upstream-proxy.ts';
export type { UpstreamProxy } from './upstream-proxy.ts';
export { countDecisions, DECISIONS_METRIC, decisionReasonLabel } from './decision-metrics.ts';
export { CA_CERT_FILE, CA_KEY_FILE } from './ca.ts';
export type { CanonicalHostFn, DecideFn, DecisionObserver, EgressDecision, EgressLogger, EgressSessionInfo, LearnFn, NetworkLogEntry, NetworkLogResult } from './types.ts';
export { scrubberFor, scrubText } from './secrets/index.ts';
export type { Scrubber } from './secrets/index.ts';
export { ControlServer } from './control.ts';
export type { ControlServerOptions } from './control.ts';
export { ControlChannelError, ControlClient, RemoteEgressProxy } from './control-client.ts';
export type { ControlClientOptions, RemoteSession } from './control-client.ts';
export { CONTROL_PATHS, MIN_CONTROL_SECRET_LENGTH } from './control-protocol.ts';

export interface EgressProxyOptions<TContext> {
  /** The policy: asked about every request, and about every tunnel first (method CONNECT, empty path). */
  decide: DecideFn<TContext>;
  /** Must be the canonicaliser `decide` uses; defaults to policies' canonicalHost. */
  canonicalHost?: CanonicalHostFn;
  /** The CA lives in `${dataDir}/ca/`. */
  dataDir: string;
  /** Operator host mapping (EGRESS_HOST_MAP, see parseHostMap): the only road to loopback/private addresses. */
  hostMap?: HostMapInput;
  /** How many uncached leaf certificates may be issued (per session, per second across the proxy, for refused hosts); see LeafLimits. */
  leafLimits?: Partial<LeafLimits>;
  /** The clock (milliseconds) the proxy-wide issuance limit runs on; default performance.now. */
  now?: () => number;
  /** The operator's own ranges (`10.20.0.0/16`, `2001:db8::/32`, a bare address), refused like private ones unless mapped (EGRESS_DENY_CIDRS). */
  denyCidrs?: readonly string[];
  /** The addresses of the proxy's own host, refused unless mapped; default: every address of os.networkInterfaces(). */
  hostAddresses?: readonly string[];
  /** Extra PEM certificate(s) trusted for upstream TLS, beside the system roots (EGRESS_UPSTREAM_CA contents). */
  upstreamCa?: string | readonly string[];
  /** Network-log entries kept per session (default 1000). */
  logCap?: number;
  /** pino-compatible; default: silent. */
  logger?: EgressLogger;
  /** Handed the body of every response `decide` marked `learn` (registry metadata), before the client gets it. */
  learn?: LearnFn<TContext>;
  /** Largest response handed to `learn`, on the wire and decoded (default 64 MiB); a bigger one is answered 502. */
  learnMaxBytes?: number;
  /**
   * What one session's captured responses (those handed to `learn`) may hold
   * at once: bytes and captures in flight (default 96 MiB and 8); beyond
   * either the request is answered 503.
   */
  captureLimits?: Partial<CaptureLimits>;
  /**
   * Called with every finished decision (allowed or not, with how it ended),
   * from the same place its network-log entry is completed: metrics, an
   * audit store. An observer must not throw; one that does is logged.
   */
  onDecision?: DecisionObserver | readonly DecisionObserver[];
  /** The operator's upstream proxy, `http://[user:pass@]host:port` (EGRESS_UPSTREAM_PROXY): allowed traffic to unmapped hosts leaves through it. */
  upstreamProxy?: string;
}

/** What createPolicyEgressProxy adds to the settings from the environment. */
export interface PolicyEgressProxyOptions {
  onDecision?: DecisionObserver | readonly DecisionObserver[];
}

export interface OpenSessionOptions<TContext> {
  executionId: string;
  /** Absolute path of the Unix socket to create (the executor's per-sandbox directory + `proxy.sock`). */
  socketPath: string;
  /** Handed to `decide` with every request of this session (e.g. the compiled policy). */
  context: TContext;
  /**
   * The execution's secrets: substituted toward their hosts in requests the
   * policy allowed, scrubbed from every response. Default: none.
   */
  secrets?: SecretBinding;
  /** Overrides the proxy's logCap for this session. */
  logCap?: number;
  /** Handed each network-log entry once it is complete, as the session runs (entries past the cap are not). */
  onEntry?: (entry: NetworkLogEntry) => void;
}

/** Full packuments of long-lived packages run to tens of MB; the abbreviated ones npm asks for are far smaller. */
const DEFAULT_LEARN_MAX_BYTES = 64 * 1024 * 1024;
const SILENT: EgressLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };
/** sun_path is 108 bytes on Linux (104 on macOS), NUL included. */
const MAX_SOCKET_PATH_BYTES = 103;

export class EgressProxy<TContext = unknown> {
  readonly #rt: ProxyRuntime<TContext>;
  readonly #ca: CertificateAuthority;
  readonly #logCap: number;
  readonly #sessions = new Map<string, EgressSession<TContext>>();
  #closed = false;

  private constructor(rt: ProxyRuntime<TContext>, ca: CertificateAuthority, logCap: number) {
    this.#rt = rt;
    this.#ca = ca;
    this.#logCap = logCap;
  }

  /** Loads (or on first start creates) the CA and validates the configuration. */
  static async create<TContext = unknown>(options: EgressProxyOptions<TContext>): Promise<EgressProxy<TContext>> {
    const canonicalHost = options.canonicalHost ?? defaultCanonicalHost;
    const hostMap = new HostMap(options.hostMap ?? new Map(), canonicalHost);
    const extra = options.upstreamCa === undefined ? [] : typeof options.upstreamCa === 'string' ? [options.upstreamCa] : [...options.upstreamCa];
    for (const pem of extra) {
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new EgressError('ERR_EGRESS_CA', 'upstreamCa must be PEM certificate(s)');
    }
    let upstreamTls: tls.SecureContext;
    try {
      // Built once and shared by every upstream connection: parsing ~150 roots per handshake would dominate.
      upstreamTls = tls.createSecureContext({ ca: [...tls.rootCertificates, ...extra], minVersion: 'TLSv1.2' });
    } catch (err) {
      throw new EgressError('ERR_EGRESS_CA', 'upstreamCa could not be loaded', { cause: err });
    }
    const upstreamProxy: UpstreamProxy | undefined = options.upstreamProxy === undefined ? undefined : parseUpstreamProxy(options.upstreamProxy);
    const addressGuard = new AddressGuard({
      denyCidrs: parseDenyCidrs(options.denyCidrs ?? []),
      ...(options.hostAddresses === undefined ? {} : { hostAddresses: options.hostAddresses }),
    });
    const ca = await loadOrCreateCa(options.dataDir);
    const logCap = options.logCap ?? 1000;
    const rt: ProxyRuntime<TContext> = {
      decide: options.decide,
      canonicalHost,
      hostMap,
      addressGuard,
      leaves: new LeafCertIssuer(ca, { ...(options.leafLimits === undefined ? {} : { limits: options.leafLimits }), ...(options.now === undefined ? {} : { now: options.now }) }),
      upstreamTls,
      logger: options.logger ?? SILENT,
      caCertPem: ca.certPem,
      observers: options.onDecision === undefined ? [] : typeof options.onDecision === 'function' ? [options.onDecision] : [...options.onDecision],
      ...(upstreamProxy === undefined ? {} : { upstreamProxy }),
      ...(options.learn === undefined ? {} : { learn: options.learn }),
      learnMaxBytes: options.learnMaxBytes ?? DEFAULT_LEARN_MAX_BYTES,
      captureLimits: Object.freeze({ ...DEFAULT_CAPTURE_LIMITS, ...options.captureLimits }),
      captures: new CaptureAccounting(),
    };
    return new EgressProxy(rt, ca, logCap);
  }

  /** The CA certificate (PEM) sandboxes must trust. */
  get caCertPem(): string {
    return this.#ca.certPem;
  }

  /** The same, in the shape of the executor's egress port (a remote proxy's answer is a promise). */
  caCertificate(): Promise<string> {
    return Promise.resolve(this.#ca.certPem);
  }

  /** What the responses `learn` reads hold right now, across sessions. */
  captureStats(): CaptureStats {
    return this.#rt.captures.stats();
  }

  /** Whether sessions can be opened (for readiness checks): until close(). */
  ready(): Promise<boolean> {
    return Promise.resolve(!this.#closed);
  }

  /** Where the CA certificate is kept (`${dataDir}/ca/ca.pem`). */
  get caCertPath(): string {
    return this.#ca.certPath;
  }

  /** Leaf certificates issued since start (cache hits excluded): what CONNECTs have cost. */
  get leafIssuances(): number {
    return this.#rt.leaves.issued;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /**
   * Opens a session listening on `socketPath` (mode 0666) with `ca.pem`
   * beside it. Open it before the sandbox starts; close it after it ends.
   */
  async openSession(options: OpenSessionOptions<TContext>): Promise<EgressSession<TContext>> {
    if (this.#closed) throw new EgressError('ERR_EGRESS_CLOSED', 'egress proxy is closed');
    const socketPath = path.resolve(options.socketPath);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new EgressError('ERR_EGRESS_SOCKET_PATH', `socket path is longer than ${MAX_SOCKET_PATH_BYTES} bytes: ${socketPath}`);
    }
    if (this.#sessions.has(socketPath)) throw new EgressError('ERR_EGRESS_SESSION_EXISTS', `a session already listens on ${socketPath}`);
    await removeStaleSocket(socketPath);
    const session = new EgressSession(this.#rt, { ...options, socketPath, secrets: options.secrets ?? SecretBinding.EMPTY, logCap: options.logCap ?? this.#logCap }, () => {
      if (this.#sessions.get(socketPath) === session) this.#sessions.delete(socketPath);
    });
    this.#sessions.set(socketPath, session);
    try {
      await session.listen();
    } catch (err) {
      this.#sessions.delete(socketPath);
      await session.close();
      throw new EgressError('ERR_EGRESS_SOCKET_PATH', `cannot listen on ${socketPath}`, { cause: err });
    }
    return session;
  }

  /** Closes every open session (their logs are dropped: close sessions yourself to keep them). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#sessions.values()].map((s) => s.close()));
  }
}

function parseDenyCidrs(texts: readonly string[]): Cidr[] {
  const parsed = texts.map(parseCidr);
  const problems = parsed.filter((p): p is string => typeof p === 'string');
  if (problems.length > 0) throw new EgressError('ERR_EGRESS_DENY_CIDRS', `invalid denyCidrs: ${problems.join('; ')}`);
  return parsed.filter((p): p is Cidr => typeof p !== 'string');
}

/** A socket left by a crashed run is removed; anything else at that path is not ours to delete. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  try {
    const st = await fs.lstat(socketPath);
    if (!st.isSocket()) throw new EgressError('ERR_EGRESS_SOCKET_PATH', `${socketPath} exists and is not a socket`);
    await fs.unlink(socketPath);
  } catch (err) {
    if (err instanceof EgressError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * The policy-enforcing proxy: sessions carry a compiled policy, and registry
 * hosts are governed by allowedPackages, learning each session's dependency
 * closure.
 */
export async function createPolicyEgressProxy(settings: EgressSettings, logger: EgressLogger, options: PolicyEgressProxyOptions = {}): Promise<EgressProxy<CompiledPolicy>> {
  const metadataReader = new MetadataReader();
  return EgressProxy.create<CompiledPolicy>({
    // Large metadata is parsed on a worker thread (it stops itself when idle and never holds the process open).
    ...sessionPackagePolicy({ npm: settings.NPM_REGISTRY_HOST, pypi: settings.PYPI_HOSTS }, (metadata) => metadataReader.read(metadata)),
    canonicalHost,
    dataDir: settings.DATA_DIR,
    ...(settings.EGRESS_HOST_MAP ? { hostMap: parseHostMap(settings.EGRESS_HOST_MAP) } : {}),
    ...(settings.EGRESS_UPSTREAM_CA ? { upstreamCa: await readFile(settings.EGRESS_UPSTREAM_CA, 'utf8') } : {}),
    ...(settings.EGRESS_UPSTREAM_PROXY ? { upstreamProxy: settings.EGRESS_UPSTREAM_PROXY } : {}),
    ...(settings.EGRESS_DENY_CIDRS === undefined ? {} : { denyCidrs: settings.EGRESS_DENY_CIDRS }),
    ...(options.onDecision === undefined ? {} : { onDecision: options.onDecision }),
    logCap: settings.EGRESS_LOG_LIMIT,
    logger,
  });
}
