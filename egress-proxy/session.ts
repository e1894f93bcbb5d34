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
 * handed each accepted tunnel's (decrypted) stream.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { EgressRequest } from '../policies/index.ts';
import { forbiddenAddressReason } from './address-guard.ts';
import { authorityFor, ipLiteralOf, splitHostPort } from './canonical-host.ts';
import { dialTargetFor } from './dial-target.ts';
import type { DialTarget } from './dial-target.ts';
import { refusal } from './errors.ts';
import type { Refusal } from './errors.ts';
import { Exchange } from './exchange.ts';
import { forwardRequest, forwardUpgrade } from './forward.ts';
import type { ForwardResult, ResponseCapture } from './forward.ts';
import type { HostMap } from './host-map.ts';
import {
  BLOCKED_HEADER,
  checkFraming,
  checkHostHeader,
  destinationOf,
  refusalBody,
  requestLineOf,
  splitAbsoluteForm,
  urlOf,
  writeRawRefusal,
  writeRawResponse,
} from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import { openTunnel } from './intercept.ts';
import type { LeafCertIssuer } from './leaf-certs.ts';
import { NetworkLog } from './network-log.ts';
import { decodeBody } from './response-body.ts';
import type { CanonicalHostFn, DecideFn, EgressLogger, EgressSessionInfo, LearnFn, NetworkLogResult } from './types.ts';

/** What every session shares, owned by the EgressProxy. */
export interface ProxyRuntime<TContext> {
  decide: DecideFn<TContext>;
  canonicalHost: CanonicalHostFn;
  hostMap: HostMap;
  leaves: LeafCertIssuer;
  upstreamTls: tls.SecureContext;
  logger: EgressLogger;
  caCertPem: string;
  /** Reads responses the policy marked `learn` (registry metadata), before the client sees them. */
  learn?: LearnFn<TContext>;
  /** Largest such response (on the wire and decoded); bigger ones are answered 502. */
  learnMaxBytes: number;
}

export interface SessionOptions<TContext> {
  executionId: string;
  /** Where to create the Unix socket; `ca.pem` is written beside it. */
  socketPath: string;
  /** Handed to `decide` with every request (typically the compiled policy). */
  context: TContext;
  logCap: number;
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
/**
 * Inside a tunnel an idle connection is closed quickly, by our own timer.
 * Node's https client behind a proxy cannot unref the TCP socket under an
 * idle TLS tunnel, so a program that made one https.get() stays alive until
 * we close the connection: this wait is added to the run time of every such
 * program. (The HTTP server's own keepAliveTimeout adds a second of grace on
 * top of its value, too slow here.) Back-to-back requests still reuse the
 * connection.
 */
const TUNNEL_IDLE_MS = 250;
/** Upstream connections per session and scheme, open and kept idle alike. */
const UPSTREAM_SOCKETS = 64;

/** A refused route names the destination when it is known (a tunnel's target), so the log shows its host. */
type Route = { kind: 'refused'; refusal: Refusal; dest?: Destination } | { kind: 'route'; dest: Destination; path: string };

export class EgressSession<TContext = unknown> {
  readonly executionId: string;
  readonly socketPath: string;
  /** The CA certificate the sandbox trusts, written beside the socket. */
  readonly caCertPath: string;

  readonly #rt: ProxyRuntime<TContext>;
  readonly #info: EgressSessionInfo<TContext>;
  readonly #log: NetworkLog;
  readonly #outer: http.Server;
  readonly #inner: http.Server;
  /** Which destination each accepted tunnel's stream is bound to. */
  readonly #tunnels = new WeakMap<Duplex, Destination>();
  readonly #tunnelIdle = new WeakMap<Duplex, { inFlight: number; timer: NodeJS.Timeout | undefined }>();
  readonly #sockets = new Set<Duplex>();
  readonly #upstreams = new Set<http.ClientRequest>();
  readonly #open = new Set<Exchange>();
  // As many idle upstream connections may be kept as may be open: with fewer, a sandbox keeping more requests
  // in flight than that has the surplus closed after each answer and redialled (a TLS handshake) for the next.
  readonly #httpAgent = new http.Agent({ keepAlive: true, maxSockets: UPSTREAM_SOCKETS, maxFreeSockets: UPSTREAM_SOCKETS, timeout: 60_000 });
  readonly #httpsAgent = new https.Agent({ keepAlive: true, maxSockets: UPSTREAM_SOCKETS, maxFreeSockets: UPSTREAM_SOCKETS, timeout: 60_000 });
  #closing: Promise<NetworkLogResult> | undefined;
  readonly #onClosed: () => void;

  /** Use EgressProxy.openSession. */
  constructor(rt: ProxyRuntime<TContext>, opts: SessionOptions<TContext>, onClosed: () => void) {
    this.#rt = rt;
    this.executionId = opts.executionId;
    this.socketPath = opts.socketPath;
    this.caCertPath = path.join(path.dirname(opts.socketPath), 'ca.pem');
    this.#info = Object.freeze({ executionId: opts.executionId, context: opts.context });
    this.#log = new NetworkLog(opts.logCap);
    this.#onClosed = onClosed;

    this.#outer = http.createServer(SERVER_OPTIONS);
    this.#outer.on('connection', (socket: Socket) => this.#track(socket));
    this.#outer.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onProxyRequest(req, res));
    this.#outer.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onProxyRequest(req, res));
    this.#outer.on('connect', (req: http.IncomingMessage, socket: Socket, head: Buffer) => void this.#onConnect(req, socket, head));
    this.#outer.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.#onProxyUpgrade(req, socket, head));
    this.#outer.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) => this.#onClientError(err, socket, null));

    this.#inner = http.createServer(SERVER_OPTIONS);
    this.#inner.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onTunnelRequest(req, res));
    this.#inner.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => this.#onTunnelRequest(req, res));
    this.#inner.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.#onTunnelUpgrade(req, socket, head));
    this.#inner.on('connect', (req: http.IncomingMessage, socket: Duplex) => this.#onNestedConnect(req, socket));
    this.#inner.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex) =>
      this.#onClientError(err, socket, this.#tunnels.get(socket) ?? null),
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
    for (const u of this.#upstreams) u.destroy();
    for (const s of this.#sockets) s.destroy();
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
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

  #exchange(method: string, dest: Destination | null, url: string, rawHostname = ''): Exchange {
    const ex = new Exchange(
      { executionId: this.executionId, method, url, hostname: dest?.host ?? rawHostname, port: dest?.port ?? 0 },
      this.#log,
      this.#rt.logger,
      (done) => this.#open.delete(done),
    );
    this.#open.add(ex);
    return ex;
  }

  // --- request targets -------------------------------------------------------------------

  /** Absolute-form request to the proxy itself: `GET http://host/path`. */
  #proxyRoute(req: http.IncomingMessage): Route {
    const target = splitAbsoluteForm(req.url ?? '');
    if (target === null) return { kind: 'refused', refusal: refusal(400, 'unsupported-request', 'Not a proxy request: use an absolute http:// URI or CONNECT') };
    if (target.scheme !== 'http') {
      return { kind: 'refused', refusal: refusal(400, 'unsupported-request', `Scheme ${target.scheme} is not proxied as a plain request; use CONNECT`) };
    }
    const d = destinationOf('http', target.authority, this.#rt.canonicalHost);
    if ('refusal' in d) return { kind: 'refused', refusal: d.refusal };
    const host = checkHostHeader(req, d.dest, this.#rt.canonicalHost);
    if (host !== null) return { kind: 'refused', refusal: host, dest: d.dest };
    return { kind: 'route', dest: d.dest, path: target.path };
  }

  /** The destination an absolute-form http:// target names, or null. */
  #absoluteDestination(target: string): Destination | null {
    const parsed = splitAbsoluteForm(target);
    if (parsed?.scheme !== 'http') return null;
    const d = destinationOf('http', parsed.authority, this.#rt.canonicalHost);
    return 'dest' in d ? d.dest : null;
  }

  /** A request inside a tunnel: its destination is the CONNECT target and nothing else. */
  #tunnelRoute(req: http.IncomingMessage, dest: Destination): Route {
    const raw = req.url ?? '';
    let pathPart: string;
    if (raw.startsWith('/')) {
      pathPart = raw;
    } else {
      const target = splitAbsoluteForm(raw);
      if (target === null) return { kind: 'refused', refusal: refusal(400, 'unsupported-request', 'Request target must be origin-form (/path)'), dest };
      const d = destinationOf(dest.scheme, target.authority, this.#rt.canonicalHost);
      if ('refusal' in d) return { kind: 'refused', refusal: d.refusal, dest };
      if (target.scheme !== dest.scheme || d.dest.host !== dest.host || d.dest.port !== dest.port) {
        return {
          kind: 'refused',
          dest,
          refusal: refusal(403, 'host-mismatch', `Request target names ${target.scheme}://${authorityFor(d.dest.host, d.dest.port, dest.scheme)}, not the tunnel's ${urlOf(dest, '')}`),
        };
      }
      pathPart = target.path;
    }
    const host = checkHostHeader(req, dest, this.#rt.canonicalHost);
    if (host !== null) return { kind: 'refused', refusal: host, dest };
    return { kind: 'route', dest, path: pathPart };
  }

  // --- admission: framing, policy, address -----------------------------------------------

  /**
   * Everything between "this request goes to dest/path" and "connect to this
   * address": framing, the policy, the address guard. Returns where to dial,
   * or why not.
   */
  async #admit(
    req: http.IncomingMessage,
    dest: Destination,
    pathPart: string,
    ex: Exchange,
  ): Promise<{ target: DialTarget; path: string; capture?: ResponseCapture } | { refusal: Refusal } | { unreachable: string }> {
    const framing = checkFraming(req);
    if (framing !== null) return { refusal: framing };

    const request: EgressRequest = { method: req.method ?? '', host: dest.rawHost, port: dest.port, scheme: dest.scheme, path: pathPart, headers: req.headers };
    const verdict = await this.#decide(request, dest);
    ex.rule = verdict.rule;
    if ('refusal' in verdict) return verdict;
    ex.policyReason = verdict.reason;
    const sendPath = upstreamPath(pathPart, verdict.path);
    if (sendPath === null) return { refusal: refusal(403, 'policy-error', 'Policy returned an unusable path') };
    const dial = await dialTargetFor(dest, this.#rt.hostMap);
    if (!('target' in dial)) return dial;
    const capture = verdict.learn === true ? this.#captureFor(request) : undefined;
    return { ...dial, path: sendPath, ...(capture === undefined ? {} : { capture }) };
  }

  /** The policy asked to read this response (registry metadata) before the client does. */
  #captureFor(request: EgressRequest): ResponseCapture | undefined {
    const learn = this.#rt.learn;
    if (learn === undefined || request.method.toUpperCase() === 'HEAD') return undefined;
    const maxBytes = this.#rt.learnMaxBytes;
    return {
      maxBytes,
      onBody: async (statusCode, headers, raw) => {
        const body = decodeBody(raw, headers['content-encoding'], maxBytes);
        if (body === null) {
          this.#rt.logger.warn({ executionId: this.executionId, host: request.host, path: request.path }, 'egress could not decode a response the policy asked to read');
          return;
        }
        try {
          await learn(request, { statusCode, contentType: headers['content-type'], body }, this.#info);
        } catch (err) {
          this.#rt.logger.error({ executionId: this.executionId, err }, 'egress learn failed');
        }
      },
    };
  }

  /** Asks the policy; a throwing policy or one that decided about another host fails closed. */
  async #decide(request: EgressRequest, dest: Destination): Promise<{ rule: string; reason: string; path?: string; learn?: boolean } | { refusal: Refusal; rule: string }> {
    try {
      const decision = await this.#rt.decide(request, this.#info);
      if (!decision.allowed) return { refusal: refusal(403, 'policy', decision.reason), rule: decision.rule };
      if (decision.host !== null && decision.host !== dest.host) {
        return { refusal: refusal(403, 'policy-error', `Policy decided on host ${decision.host}, request is for ${dest.host}`), rule: decision.rule };
      }
      return {
        rule: decision.rule,
        reason: decision.reason,
        ...(decision.path === undefined ? {} : { path: decision.path }),
        ...(decision.learn === true ? { learn: true } : {}),
      };
    } catch (err) {
      this.#rt.logger.error({ executionId: this.executionId, err }, 'egress decide failed');
      return { refusal: refusal(403, 'policy-error', 'Policy evaluation failed'), rule: 'error' };
    }
  }

  // --- handlers ----------------------------------------------------------------------------

  #onProxyRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const route = this.#proxyRoute(req);
    void this.#serve(req, res, route, req.url ?? '');
  }

  /** Counts requests in flight per tunnel; the tunnel closes TUNNEL_IDLE_MS after the last one ends. */
  #closeWhenIdle(socket: Duplex, res: http.ServerResponse): void {
    const idle = this.#tunnelIdle.get(socket) ?? { inFlight: 0, timer: undefined };
    this.#tunnelIdle.set(socket, idle);
    clearTimeout(idle.timer);
    idle.inFlight += 1;
    let ended = false;
    const onEnd = () => {
      if (ended) return;
      ended = true;
      idle.inFlight -= 1;
      if (idle.inFlight > 0) return;
      idle.timer = setTimeout(() => {
        if (idle.inFlight === 0) socket.destroy();
      }, TUNNEL_IDLE_MS);
      idle.timer.unref();
    };
    res.once('finish', onEnd);
    res.once('close', onEnd);
  }

  #onTunnelRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const dest = this.#tunnels.get(req.socket);
    if (dest === undefined) {
      res.destroy();
      return;
    }
    this.#closeWhenIdle(req.socket, res);
    const route = this.#tunnelRoute(req, dest);
    void this.#serve(req, res, route, urlOf(dest, req.url?.startsWith('/') === true ? req.url : '/'));
  }

  async #serve(req: http.IncomingMessage, res: http.ServerResponse, route: Route, fallbackUrl: string): Promise<void> {
    const method = req.method ?? '';
    if (route.kind === 'refused') {
      const ex = this.#exchange(method, route.dest ?? null, fallbackUrl, fallbackUrl);
      this.#refuse(res, route.refusal, ex);
      return;
    }
    const { dest, path: pathPart } = route;
    const ex = this.#exchange(method, dest, urlOf(dest, pathPart));
    const admitted = await this.#admit(req, dest, pathPart, ex);
    if ('refusal' in admitted) {
      this.#refuse(res, admitted.refusal, ex);
      return;
    }
    if ('unreachable' in admitted) {
      const body = JSON.stringify({ error: 'upstream unavailable', reason: admitted.unreachable });
      res.writeHead(502, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Egress-Error': 'upstream' });
      res.end(body);
      ex.finish({ statusCode: 502, blocked: false, reason: admitted.unreachable });
      return;
    }
    if (res.destroyed) {
      ex.finish({ statusCode: 0, blocked: false, reason: 'client closed the connection' });
      return;
    }
    // Only now, with the request admitted, may the client send its body.
    if (/^100-continue$/iu.test(String(req.headers.expect ?? ''))) res.writeContinue();
    const agent = dest.scheme === 'https' ? this.#httpsAgent : this.#httpAgent;
    const upstream = forwardRequest(req, res, { dest, path: admitted.path, target: admitted.target, secureContext: this.#rt.upstreamTls }, agent, (r: ForwardResult) => {
      if (upstream !== null) this.#upstreams.delete(upstream);
      ex.finish({ statusCode: r.statusCode, blocked: false, ...(r.error === undefined ? {} : { reason: r.error }) });
    }, admitted.capture);
    if (upstream !== null && !ex.done) this.#upstreams.add(upstream);
  }

  #refuse(res: http.ServerResponse, r: Refusal, ex: Exchange): void {
    const body = refusalBody(r);
    const headers: Record<string, string | number> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), [BLOCKED_HEADER]: r.code };
    // After a framing or syntax problem the rest of the connection cannot be trusted.
    if (r.status === 400) headers['Connection'] = 'close';
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(r.status, headers);
      res.end(body);
    }
    ex.finish({ statusCode: r.status, blocked: true, reason: r.reason, rule: ex.rule ?? `proxy:${r.code}` });
  }

  #onProxyUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    void this.#serveUpgrade(req, socket, head, this.#proxyRoute(req), req.url ?? '');
  }

  #onTunnelUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const dest = this.#tunnels.get(socket);
    if (dest === undefined) {
      socket.destroy();
      return;
    }
    void this.#serveUpgrade(req, socket, head, this.#tunnelRoute(req, dest), urlOf(dest, req.url?.startsWith('/') === true ? req.url : '/'));
  }

  async #serveUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, route: Route, fallbackUrl: string): Promise<void> {
    const method = req.method ?? '';
    if (route.kind === 'refused') {
      const ex = this.#exchange(method, route.dest ?? null, fallbackUrl, fallbackUrl);
      writeRawRefusal(socket, route.refusal);
      ex.finish({ statusCode: route.refusal.status, blocked: true, reason: route.refusal.reason, rule: `proxy:${route.refusal.code}` });
      return;
    }
    const { dest, path: pathPart } = route;
    const ex = this.#exchange(method, dest, urlOf(dest, pathPart));
    const admitted = await this.#admit(req, dest, pathPart, ex);
    if ('refusal' in admitted) {
      writeRawRefusal(socket, admitted.refusal);
      ex.finish({ statusCode: admitted.refusal.status, blocked: true, reason: admitted.refusal.reason, rule: ex.rule ?? `proxy:${admitted.refusal.code}` });
      return;
    }
    if ('unreachable' in admitted) {
      writeRawResponse(socket, 502, { 'Content-Type': 'application/json', 'X-Egress-Error': 'upstream' }, JSON.stringify({ error: 'upstream unavailable', reason: admitted.unreachable }));
      ex.finish({ statusCode: 502, blocked: false, reason: admitted.unreachable });
      return;
    }
    // An upgraded connection is long-lived by design; the idle limit no longer applies.
    if (typeof (socket as Partial<Socket>).setTimeout === 'function') (socket as Socket).setTimeout(0);
    const upstream = forwardUpgrade(req, socket, head, { dest, path: admitted.path, target: admitted.target, secureContext: this.#rt.upstreamTls }, (r) => {
      ex.finish({ statusCode: r.statusCode, blocked: false, ...(r.error === undefined ? {} : { reason: r.error }) });
    });
    if (upstream !== null) {
      this.#upstreams.add(upstream);
      upstream.once('close', () => this.#upstreams.delete(upstream));
    }
  }

  #onNestedConnect(req: http.IncomingMessage, socket: Duplex): void {
    const dest = this.#tunnels.get(socket);
    const r = refusal(400, 'unsupported-request', 'CONNECT inside a tunnel is not allowed');
    const ex = this.#exchange('CONNECT', dest ?? null, `${dest === undefined ? '' : urlOf(dest, '')} CONNECT ${req.url ?? ''}`);
    writeRawRefusal(socket, r);
    ex.finish({ statusCode: 400, blocked: true, reason: r.reason, rule: 'proxy:unsupported-request' });
  }

  /** llhttp refused to parse the request (bad method, CL+TE, oversized headers…): answer, log, close. */
  #onClientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex, dest: Destination | null): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const { method, target } = requestLineOf(err.rawPacket);
    let r: Refusal;
    let status: number = 400;
    switch (err.code ?? '') {
      case 'HPE_INVALID_TRANSFER_ENCODING':
      case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      // Also what llhttp says when Transfer-Encoding comes before Content-Length: the same smuggling, the same code.
      case 'HPE_INVALID_CONTENT_LENGTH':
        r = refusal(400, 'ambiguous-framing', `Ambiguous message framing (${err.message.replace(/^Parse Error: /u, '')})`);
        break;
      case 'HPE_HEADER_OVERFLOW':
        r = refusal(400, 'malformed-request', 'Request headers too large');
        status = 431;
        break;
      case 'ERR_HTTP_REQUEST_TIMEOUT':
        r = refusal(400, 'malformed-request', 'Request headers not received in time');
        status = 408;
        break;
      default:
        r = refusal(400, 'malformed-request', `Malformed request (${err.code ?? 'parse error'}: ${err.message.replace(/^Parse Error: /u, '')})`);
    }
    // Nothing was received at all (a silent client timing out): no request to log.
    if (method === '' && err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.destroy();
      return;
    }
    const url = dest === null ? target : urlOf(dest, target.startsWith('/') ? target : '/');
    // On the proxy's own socket the request line is the only hint of the host: log it when it parses.
    const ex = this.#exchange(method, dest ?? this.#absoluteDestination(target), url, dest === null ? target : '');
    writeRawResponse(socket, status, { 'Content-Type': 'application/json', [BLOCKED_HEADER]: r.code }, refusalBody(r));
    ex.finish({ statusCode: status, blocked: true, reason: r.reason, rule: `proxy:${r.code}` });
  }

  /**
   * CONNECT: refused outright only when the target can never be right (not a
   * host, an IP literal the guard forbids, a port the policy does not open);
   * otherwise accepted and intercepted, so a blocked HTTPS request gets a
   * readable 403 inside the tunnel instead of a failed handshake.
   */
  async #onConnect(req: http.IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const authority = req.url ?? '';
    const hp = splitHostPort(authority);
    const host = hp === null ? null : this.#rt.canonicalHost(hp.host);
    const refuseConnect = (r: Refusal, dest: Destination | null, rule: string) => {
      const ex = this.#exchange('CONNECT', dest, dest === null ? authority : urlOf(dest, ''), authority);
      writeRawRefusal(socket, r);
      ex.finish({ statusCode: r.status, blocked: true, reason: r.reason, rule });
    };
    if (hp === null || host === null) {
      refuseConnect(refusal(400, 'invalid-host', `CONNECT target "${authority.slice(0, 200)}" is not a host:port`), null, 'proxy:invalid-host');
      return;
    }
    const scheme = hp.port === 80 ? 'http' : 'https';
    const dest: Destination = { scheme, rawHost: hp.host, host, port: hp.port };

    const literal = ipLiteralOf(host);
    const mapped = this.#rt.hostMap.lookup(host, hp.port);
    if (literal !== null && mapped === undefined) {
      const why = forbiddenAddressReason(literal);
      if (why !== null) {
        refuseConnect(refusal(403, 'destination-address', `Destination ${host} is a forbidden address: ${why}`), dest, 'proxy:destination-address');
        return;
      }
    }
    if (hp.port !== 80 && hp.port !== 443) {
      const request: EgressRequest = { method: 'CONNECT', host: hp.host, port: hp.port, scheme: 'https', path: '', headers: req.headers };
      const verdict = await this.#decide(request, dest);
      if ('refusal' in verdict) {
        refuseConnect(verdict.refusal, dest, verdict.rule);
        return;
      }
    }

    let leaf: tls.SecureContext;
    try {
      leaf = await this.#rt.leaves.contextFor(host);
    } catch (err) {
      this.#rt.logger.error({ executionId: this.executionId, host, err }, 'egress leaf certificate failed');
      refuseConnect(refusal(400, 'tls-handshake', 'Cannot intercept this host'), dest, 'proxy:tls-handshake');
      return;
    }
    if (!socket.writable) return;
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);

    const outcome = await openTunnel(socket, dest, leaf, this.#rt.canonicalHost);
    switch (outcome.kind) {
      case 'tls':
        this.#track(outcome.socket);
        this.#tunnels.set(outcome.socket, dest);
        this.#inner.emit('connection', outcome.socket);
        return;
      case 'plain':
        // A tunnel carrying plain HTTP is checked the same way, as http:// to the target.
        this.#tunnels.set(outcome.socket, { ...dest, scheme: 'http' });
        this.#inner.emit('connection', outcome.socket);
        return;
      case 'refused': {
        const ex = this.#exchange('CONNECT', dest, urlOf(dest, ''));
        ex.finish({ statusCode: 0, blocked: true, reason: outcome.reason, rule: `proxy:${outcome.code}` });
        return;
      }
      case 'closed':
        socket.destroy();
        return;
    }
  }
}

/**
 * The path to send upstream. When the policy matched its rules against a
 * normalised path (`Decision.path`, query excluded), that path goes out with
 * the raw query, so the upstream resolves exactly what the rules saw and no
 * dot segment or escape can mean something else there. Otherwise the raw
 * path goes out byte for byte. A path Node would refuse to write, or that is
 * not origin-form, is the policy's bug: fail closed.
 */
function upstreamPath(rawPath: string, decidedPath: string | undefined): string | null {
  if (decidedPath === undefined) return rawPath;
  if (!decidedPath.startsWith('/') || !/^[\x21-\x7e]+$/u.test(decidedPath) || decidedPath.includes('?') || decidedPath.includes('#')) return null;
  const q = rawPath.indexOf('?');
  return q === -1 ? decidedPath : decidedPath + rawPath.slice(q);
}

async function unlinkQuietly(file: string): Promise<void> {
  try {
    await fs.unlink(file);
  } catch {
    // Already gone (or never made): nothing to clean.
  }
}

