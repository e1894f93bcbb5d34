/**
 * One sandbox's egress: its own Unix socket (the socket is the sandbox's
 * identity, so there are no credentials to steal and no way to speak through
 * another sandbox's session), its own network log, and its own upstream
 * connection pools.
 *
 * Why node:http and not proxy-chain's Server: proxy-chain destroys every
 * connection without a `remoteAddress` (its guard for nodejs/node#23858),
 * which is every connection on a Unix socket, and its forward path gives
 * `request.url` to the WHATWG URL parser, which resolves `%2e%2e` and dot
 * segments, so the path sent upstream could differ from the path checked.
 * Its CONNECT handling relays opaque bytes, while every request inside a
 * tunnel must be decided. What is left for proxy-chain to do here is nothing
 * the plain http server does not already do, so the proxy is written on
 * node:http + node:tls, following proxy-chain's shape (one handler per
 * request, CONNECT handed over with the socket, errors mapped to a status in
 * one place).
 *
 * Two HTTP servers per session: the outer one listens on the Unix socket and
 * sees absolute-form requests and CONNECT; the inner one never listens and is
 * handed each accepted tunnel's (decrypted) stream. This class owns the
 * session's state and lifecycle (servers, sockets, tunnels, pools, the log);
 * what happens to each request is the handlers' (request-handler.ts,
 * connect-handler.ts), reached through the SessionScope seam.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { SecretBinding } from '../policies/index.ts';
import { Admissions } from './admission.ts';
import { serveConnect } from './connect-handler.ts';
import { Exchange } from './exchange.ts';
import type { ExchangeSinks } from './exchange.ts';
import type { Destination } from './http-checks.ts';
import { NetworkLog } from './network-log.ts';
import { refuseNestedConnect, refuseUnparsed, serveRequest } from './request-handler.ts';
import { Responder } from './responder.ts';
import type { Sink } from './responder.ts';
import { fallbackUrlOf, proxyRoute, tunnelRoute } from './route.ts';
import { TUNNEL_SERVER_KEEP_ALIVE_MS, TunnelKeepAlive } from './tunnel-keep-alive.ts';
import { TunnellingAgent } from './upstream-proxy.ts';
import type { ExchangeRequest, ProxyRuntime, SessionScope } from './runtime.ts';
import type { EgressSessionInfo, NetworkLogEntry, NetworkLogResult } from './types.ts';

export type { ProxyRuntime } from './runtime.ts';

export interface SessionOptions<TContext> {
  executionId: string;
  /** Where to create the Unix socket; `ca.pem` is written beside it. */
  socketPath: string;
  /** Handed to `decide` with every request (typically the compiled policy). */
  context: TContext;
  /** The execution's secrets; empty when it has none. */
  secrets: SecretBinding;
  logCap: number;
  /** Handed each network-log entry of this session once it is complete, as it completes (not past logCap). */
  onEntry?: (entry: NetworkLogEntry) => void;
}

/** Idle client connections are dropped after this long (slow-loris guard). */
const CLIENT_IDLE_MS = 120_000;
const SERVER_OPTIONS: http.ServerOptions = {
  // Missing Host is answered (and logged) by our own checks, not silently by Node.
  requireHostHeader: false,
  keepAliveTimeout: 5_000,
  headersTimeout: 30_000,
  // Long downloads are fine; idleness is what CLIENT_IDLE_MS limits.
  requestTimeout: 0,
};
/** Inside a tunnel, idle connections and the keep-alive they announce are tunnel-keep-alive.ts's. */
const TUNNEL_SERVER_OPTIONS: http.ServerOptions = { ...SERVER_OPTIONS, keepAliveTimeout: TUNNEL_SERVER_KEEP_ALIVE_MS };
/** Upstream connections per session and scheme, open and kept idle alike. */
const UPSTREAM_SOCKETS = 64;
const AGENT_OPTIONS: https.AgentOptions = { keepAlive: true, maxSockets: UPSTREAM_SOCKETS, maxFreeSockets: UPSTREAM_SOCKETS, timeout: 60_000 };

export class EgressSession<TContext = unknown> {
  readonly executionId: string;
  readonly socketPath: string;
  /** The CA certificate the sandbox trusts, written beside the socket. */
  readonly caCertPath: string;

  readonly #rt: ProxyRuntime<TContext>;
  readonly #info: EgressSessionInfo<TContext>;
  readonly #log: NetworkLog;
  readonly #sinks: ExchangeSinks;
  readonly #handlers: SessionScope<TContext>;
  readonly #outer: http.Server;
  readonly #inner: http.Server;
  /** Which destination each accepted tunnel's stream is bound to. */
  readonly #tunnels = new WeakMap<Duplex, Destination>();
  readonly #tunnelKeepAlive = new TunnelKeepAlive();
  readonly #sockets = new Set<Duplex>();
  /** Upgrade requests: their connections belong to no agent. */
  readonly #upgrades = new Set<http.ClientRequest>();
  readonly #open = new Set<Exchange>();
  // As many idle upstream connections may be kept as may be open: with fewer, a sandbox keeping more requests
  // in flight than that has the surplus closed after each answer and redialled (a TLS handshake) for the next.
  readonly #httpAgent = new http.Agent(AGENT_OPTIONS);
  readonly #httpsAgent = new https.Agent(AGENT_OPTIONS);
  /** Only with an upstream proxy: TLS connections tunnelled through it, pooled per destination. */
  readonly #tunnellingAgent: TunnellingAgent | undefined;
  #closing: Promise<NetworkLogResult> | undefined;
  readonly #onClosed: () => void;

  /** Use EgressProxy.openSession. */
  constructor(rt: ProxyRuntime<TContext>, opts: SessionOptions<TContext>, onClosed: () => void) {
    this.#rt = rt;
    this.executionId = opts.executionId;
    this.socketPath = opts.socketPath;
    this.caCertPath = path.join(path.dirname(opts.socketPath), 'ca.pem');
    this.#info = Object.freeze({ executionId: opts.executionId, context: opts.context, secrets: opts.secrets });
    this.#log = new NetworkLog(opts.logCap);
    this.#tunnellingAgent = rt.upstreamProxy === undefined ? undefined : new TunnellingAgent(rt.upstreamProxy, AGENT_OPTIONS);
    this.#sinks = { log: this.#log, logger: rt.logger, observers: rt.observers, ...(opts.onEntry === undefined ? {} : { onEntry: opts.onEntry }) };
    this.#handlers = this.#scope();
    this.#onClosed = onClosed;

    this.#outer = http.createServer(SERVER_OPTIONS);
    this.#outer.on('connection', (socket: Socket) => this.#track(socket));
    this.#outer.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onProxyRequest(req, res));
    this.#outer.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onProxyRequest(req, res));
    this.#outer.on('connect', (req: http.IncomingMessage, socket: Socket, head: Buffer) => void serveConnect(this.#handlers, req, socket, head));
    this.#outer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.#onProxyUpgrade(req, socket, head));
    this.#outer.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) => refuseUnparsed(this.#handlers, err, socket, null));

    this.#inner = http.createServer(TUNNEL_SERVER_OPTIONS);
    this.#inner.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onTunnelRequest(req, res));
    this.#inner.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onTunnelRequest(req, res));
    this.#inner.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.#onTunnelUpgrade(req, socket, head));
    this.#inner.on('connect', (req: http.IncomingMessage, socket: Duplex) => refuseNestedConnect(this.#handlers, req, socket));
    this.#inner.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) =>
      refuseUnparsed(this.#handlers, err, socket, this.#tunnels.get(socket) ?? null),
    );
    for (const server of [this.#outer, this.#inner]) server.setTimeout(CLIENT_IDLE_MS);
  }

  /** Creates the socket (mode 0666: the sandbox runs as another uid) and writes `ca.pem` beside it. */
  async listen(): Promise<void> {
    const dir = path.dirname(this.socketPath);
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    // The executor normally placed this very certificate before the sandbox
    // started; then there is nothing to write. Otherwise it is written aside
    // and renamed into place: the sandbox may be reading a copy already and
    // must never see a half-written one.
    const placed = await fs.readFile(this.caCertPath, 'utf8').catch(() => undefined);
    if (placed !== this.#rt.caCertPem) {
      const staged = `${this.caCertPath}.${process.pid}.tmp`;
      await fs.writeFile(staged, this.#rt.caCertPem, { mode: 0o644 });
      await fs.chmod(staged, 0o644);
      await fs.rename(staged, this.caCertPath);
    }
    await new Promise<void>((resolve, reject) => {
      this.#outer.once('error', reject);
      this.#outer.listen({ path: this.socketPath, readableAll: true, writableAll: true }, () => {
        this.#outer.off('error', reject);
        resolve();
      });
    });
    // readableAll/writableAll leave the execute bits set too; 0666 is what is meant.
    await fs.chmod(this.socketPath, 0o666);
  }

  /**
   * Seam for a future TCP front door (remote deployments): a listener that
   * authenticated a connection with per-session proxy credentials hands the
   * socket here, and it is served exactly like one from the Unix socket.
   */
  acceptConnection(socket: Socket): void {
    this.#outer.emit('connection', socket);
  }

  /** The network log so far (entries of unfinished requests included as they stand). */
  networkLog(): NetworkLogResult {
    return this.#log.snapshot();
  }

  /**
   * Stops listening, cuts every connection (client and upstream), removes the
   * socket and `ca.pem`, and returns the network log. Safe to call twice.
   */
  close(): Promise<NetworkLogResult> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<NetworkLogResult> {
    const closed = new Promise<void>((resolve) => this.#outer.close(() => resolve()));
    for (const u of this.#upgrades) u.destroy();
    for (const s of this.#sockets) s.destroy();
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
    this.#tunnellingAgent?.destroy();
    await closed;
    // Let 'close' handlers of destroyed responses record their outcome first.
    await new Promise((r) => setImmediate(r));
    for (const ex of [...this.#open]) ex.finish({ statusCode: 0, blocked: false, reason: 'session closed before the exchange ended' });
    await Promise.all([unlinkQuietly(this.socketPath), unlinkQuietly(this.caCertPath)]);
    this.#onClosed();
    return this.#log.snapshot();
  }

  #track(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  /** Builds the seam the request handlers use: the session's state stays here, the handling there. */
  #scope(): SessionScope<TContext> {
    return {
      rt: this.#rt,
      executionId: this.executionId,
      secrets: this.#info.secrets,
      admissions: new Admissions(this.#rt, this.#info),
      respond: (sink: Sink, request: ExchangeRequest) => new Responder(sink, this.#exchange(request)),
      tunnelOf: (stream) => this.#tunnels.get(stream),
      serveTunnel: (stream, dest, tracked) => {
        if (tracked) this.#track(stream);
        this.#tunnels.set(stream, dest);
        this.#inner.emit('connection', stream);
      },
      agentFor: (scheme, throughProxy) => {
        if (scheme === 'http') return this.#httpAgent;
        return throughProxy ? (this.#tunnellingAgent ?? this.#httpsAgent) : this.#httpsAgent;
      },
      trackUpgrade: (upstream) => {
        this.#upgrades.add(upstream);
        upstream.once('close', () => this.#upgrades.delete(upstream));
      },
    };
  }

  #exchange(request: ExchangeRequest): Exchange {
    const { method, dest, url } = request;
    const ex = new Exchange(
      { executionId: this.executionId, method, url, hostname: dest?.host ?? request.rawHostname ?? '', port: dest?.port ?? 0, path: request.path ?? '' },
      this.#sinks,
      (done) => this.#open.delete(done),
    );
    this.#open.add(ex);
    return ex;
  }

  // --- the servers' events, each handed to the one pipeline ------------------------------

  #onProxyRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    void serveRequest(this.#handlers, req, { kind: 'response', res }, proxyRoute(req, this.#rt.canonicalHost), fallbackUrlOf(req, null));
  }

  #onTunnelRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const dest = this.#tunnels.get(req.socket);
    if (dest === undefined) {
      res.destroy();
      return;
    }
    this.#tunnelKeepAlive.track(req.socket, res);
    void serveRequest(this.#handlers, req, { kind: 'response', res }, tunnelRoute(req, dest, this.#rt.canonicalHost), fallbackUrlOf(req, dest));
  }

  #onProxyUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    void serveRequest(this.#handlers, req, { kind: 'socket', socket, head }, proxyRoute(req, this.#rt.canonicalHost), fallbackUrlOf(req, null));
  }

  #onTunnelUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const dest = this.#tunnels.get(socket);
    if (dest === undefined) {
      socket.destroy();
      return;
    }
    void serveRequest(this.#handlers, req, { kind: 'socket', socket, head }, tunnelRoute(req, dest, this.#rt.canonicalHost), fallbackUrlOf(req, dest));
  }
}

async function unlinkQuietly(file: string): Promise<void> {
  try {
    await fs.unlink(file);
  } catch {
    // Already gone (or never made): nothing to clean.
  }
}
