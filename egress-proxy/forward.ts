/**
 * Sends an admitted request to the address that was checked and streams the
 * answer back. Built on node:http/https directly (not proxy-chain's forward,
 * which hands `request.url` to the URL parser and so may send a path other
 * than the one checked): the path goes out exactly as the policy checked it
 * (see upstreamPath in route.ts), the `Host` is the destination's, and
 * bodies are piped, never buffered.
 */
import http from 'node:http';
import https from 'node:https';
import { pipeline } from 'node:stream';
import type { Duplex, Transform } from 'node:stream';
import tls from 'node:tls';
import { authorityFor, ipLiteralOf } from './canonical-host.ts';
import type { DialTarget } from './dial-target.ts';
import type { Refusal } from './errors.ts';
import { forwardableHeaders, upgradeResponseProblem } from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import { proxyHeaders, tunnelledConnection } from './upstream-proxy.ts';
import type { UpstreamProxy } from './upstream-proxy.ts';
import { closingTicket, relayCaptured, relayTail, type ResponseCapture } from './captured-relay.ts';
import { describe, OnceOutcome, type ForwardOutcome, type ForwardResult } from './forward-outcome.ts';

/** Only HTTP/1.1 upstream, as towards the client. */
const UPSTREAM_ALPN = ['http/1.1'];
/** An upstream that goes quiet this long is given up on. */
const UPSTREAM_IDLE_MS = 60_000;

export type { ForwardOutcome, ForwardResult } from './forward-outcome.ts';
export type { ResponseCapture } from './captured-relay.ts';

export interface UpstreamRoute {
  dest: Destination;
  /** Origin-form path exactly as checked. */
  path: string;
  target: DialTarget;
  /** Upstream trust: system roots plus the operator's extra CAs, built once. */
  secureContext: tls.SecureContext;
  /** The operator's upstream proxy the request leaves through, if any. */
  via?: UpstreamProxy;
}

/**
 * A request forwarded otherwise than as received (secrets substituted): the
 * headers to send, the body stream, and what to do with the response before
 * the client sees it. forward.ts only applies it; secret-request.ts makes it.
 */
export interface RequestRewrite {
  /** Header pairs (flat) sent instead of the client's forwardable ones, framing included. */
  headers: string[];
  /** The body as it is sent; the upstream request opens on its first output, so a refusal within it sends nothing. */
  body?: Transform;
  response(ures: http.IncomingMessage): ResponseTreatment;
}

export type ResponseTreatment =
  | { kind: 'pass' }
  | { kind: 'refuse'; refusal: Refusal; status: number }
  /** Headers (flat, forwardable) to send, and the body's transforms in order. */
  | { kind: 'rewrite'; headers: string[]; transforms: Transform[] };

type UpstreamRequestOptions = https.RequestOptions & Pick<tls.ConnectionOptions, 'secureContext' | 'ALPNProtocols'>;

function requestOptions(
  req: http.IncomingMessage,
  route: UpstreamRoute,
  agent: http.Agent | false,
  extraHeaders: string[],
  rewrite?: RequestRewrite,
): UpstreamRequestOptions {
  const { dest, target } = route;
  const headers = ['Host', authorityFor(dest.host, dest.port, dest.scheme), ...(rewrite?.headers ?? forwardableHeaders(req.rawHeaders)), ...extraHeaders];
  // A chunked request body stays chunked: without the header Node would send a GET body unframed.
  if (rewrite === undefined && req.headers['transfer-encoding'] !== undefined) headers.push('Transfer-Encoding', 'chunked');
  const options: UpstreamRequestOptions = {
    host: target.address,
    family: target.family,
    port: target.port,
    method: req.method,
    path: route.path,
    headers,
    setHost: false,
    agent,
    timeout: UPSTREAM_IDLE_MS,
  };
  if (dest.scheme === 'https') {
    const bareIp = ipLiteralOf(dest.host);
    const identity = bareIp ?? dest.host;
    // SNI and certificate identity are the destination's name, never the (possibly mapped) address dialled.
    if (bareIp === null) options.servername = dest.host;
    options.secureContext = route.secureContext;
    options.ALPNProtocols = UPSTREAM_ALPN;
    options.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(identity, cert);
  }
  return route.via === undefined ? options : throughProxy(options, route, route.via, headers);
}

/**
 * Readdresses a request to the upstream proxy. Plain HTTP: sent to the
 * proxy in absolute form, path exactly as checked. HTTPS: host and port stay
 * the destination's (the pool key, and the CONNECT authority), and the
 * connection is a tunnel through the proxy (the session's TunnellingAgent,
 * or a one-off tunnel when there is no agent).
 */
function throughProxy(options: UpstreamRequestOptions, route: UpstreamRoute, via: UpstreamProxy, headers: string[]): UpstreamRequestOptions {
  const { dest, target } = route;
  const { family: _family, ...rest } = options;
  if (dest.scheme === 'http') {
    headers.push(...proxyHeaders(via));
    return { ...rest, host: via.host, port: via.port, path: `http://${authorityFor(dest.host, dest.port, 'http')}${route.path}` };
  }
  const tunnelled: UpstreamRequestOptions = { ...rest, host: target.address, port: target.port };
  if (options.agent === false) tunnelled.createConnection = tunnelledConnection(via);
  return tunnelled;
}

function send(route: UpstreamRoute, options: UpstreamRequestOptions): http.ClientRequest {
  return route.dest.scheme === 'https' ? https.request(options) : http.request(options);
}

/** Forwards one ordinary request; `onEnd` is called once, when the exchange is over. */
export function forwardRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  route: UpstreamRoute,
  agent: http.Agent,
  report: ForwardOutcome,
  capture?: ResponseCapture,
  rewrite?: RequestRewrite,
): http.ClientRequest | null {
  // A capture's slot is taken before anything goes upstream, and given back however the exchange ends.
  const ticket = capture?.budget.open();
  if (ticket === null) {
    const { sessionCaptures } = (capture as ResponseCapture).budget.limits;
    report.failed(503, `this sandbox already has ${sessionCaptures} registry responses being read by the policy in flight; retry when one has finished`);
    return null;
  }
  const outcome = new OnceOutcome(ticket === undefined ? report : closingTicket(report, ticket));
  const end = (result: ForwardResult) => outcome.ended(result);
  let upstream: http.ClientRequest;
  try {
    upstream = send(route, requestOptions(req, route, agent, [], rewrite));
  } catch (err) {
    outcome.failed(502, describe(err));
    return null;
  }

  upstream.on('response', (ures) => {
    const statusCode = ures.statusCode ?? 502;
    if (capture !== undefined && ticket !== undefined) {
      if (capture.tailBytes === undefined) relayCaptured(ures, res, capture, ticket, outcome);
      else relayTail(ures, res, capture, capture.tailBytes, ticket, outcome);
      return;
    }
    const treatment: ResponseTreatment = rewrite?.response(ures) ?? { kind: 'pass' };
    if (treatment.kind === 'refuse') {
      ures.destroy();
      outcome.refused(treatment.refusal, treatment.status);
      return;
    }
    try {
      res.writeHead(statusCode, ures.statusMessage, treatment.kind === 'rewrite' ? treatment.headers : forwardableHeaders(ures.rawHeaders));
    } catch (err) {
      ures.destroy();
      outcome.failed(502, `upstream response rejected: ${describe(err)}`);
      return;
    }
    ures.on('error', (err) => {
      res.destroy();
      end({ statusCode, error: `upstream broke off: ${describe(err)}` });
    });
    res.on('finish', () => end({ statusCode }));
    if (treatment.kind === 'rewrite') {
      pipeline([ures, ...treatment.transforms, res], (err) => {
        if (err) end({ statusCode, error: `response could not be relayed: ${describe(err)}` });
      });
    } else {
      ures.pipe(res);
    }
  });

  upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
  upstream.on('error', (err) => {
    // Already answered in full (the proxy's own refusal of a body): cutting it now would lose the answer.
    if (outcome.over && res.writableEnded) return;
    if (!res.headersSent) {
      outcome.failed((err as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? 504 : 502, describe(err));
    } else {
      res.destroy();
      end({ statusCode: res.statusCode, error: describe(err) });
    }
  });
  // The client went away: stop the upstream side too.
  res.on('close', () => {
    if (!res.writableFinished) {
      upstream.destroy();
      end({ statusCode: res.headersSent ? res.statusCode : 0, error: 'client closed the connection' });
    }
  });
  req.on('error', () => upstream.destroy());
  if (rewrite?.body === undefined && hasNoBody(req)) {
    // Most requests: nothing to pipe, and a pipe's dozen listeners per request are measurable CPU at load.
    upstream.end();
  } else if (rewrite?.body === undefined) {
    req.pipe(upstream);
  } else {
    pipeBodyThrough(req, rewrite.body, upstream, outcome);
  }
  return upstream;
}

/** An HTTP/1.1 request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3), nor does one of length 0. */
function hasNoBody(req: http.IncomingMessage): boolean {
  const { headers } = req;
  return headers['transfer-encoding'] === undefined && (headers['content-length'] === undefined || headers['content-length'] === '0');
}

/**
 * Sends the body through its rewrite. Node connects a request only once it
 * is written to or ended, so nothing reaches the upstream before the rewrite
 * released its first bytes: a refusal within them sends nothing at all.
 */
function pipeBodyThrough(req: http.IncomingMessage, body: Transform, upstream: http.ClientRequest, outcome: OnceOutcome): void {
  body.on('error', (err) => {
    upstream.destroy();
    const refused = (err as { refusal?: Refusal }).refusal;
    if (refused !== undefined) outcome.refused(refused, refused.status);
    else outcome.failed(502, `request body could not be relayed: ${describe(err)}`);
  });
  req.pipe(body).pipe(upstream);
}

/**
 * Forwards a protocol upgrade (WebSocket) that was decided on its upgrade
 * request. A dedicated upstream connection (no agent): once upgraded it
 * belongs to this client alone.
 */
export function forwardUpgrade(
  req: http.IncomingMessage,
  client: Duplex,
  head: Buffer,
  route: UpstreamRoute,
  report: ForwardOutcome,
): http.ClientRequest | null {
  const outcome = new OnceOutcome(report);
  const end = (result: ForwardResult) => outcome.ended(result);
  let upstream: http.ClientRequest;
  try {
    // Only a checked WebSocket handshake gets here (checkWebSocketUpgrade); the token is ours, not the client's spelling.
    upstream = send(route, requestOptions(req, route, false, ['Connection', 'Upgrade', 'Upgrade', 'websocket']));
  } catch (err) {
    outcome.failed(502, describe(err));
    return null;
  }

  upstream.on('upgrade', (ures, usock, uhead) => {
    const problem = upgradeResponseProblem(req.headers, ures.headers);
    if (problem !== null) {
      // Past a 101 we cannot check, the upstream may be speaking anything: its connection is cut, and the
      // client's is answered 502 and closed (a raw answer always closes).
      usock.destroy();
      outcome.failed(502, problem);
      return;
    }
    let headText = `HTTP/1.1 ${ures.statusCode ?? 101} ${ures.statusMessage ?? ''}\r\n`;
    for (let i = 0; i + 1 < ures.rawHeaders.length; i += 2) headText += `${ures.rawHeaders[i]}: ${ures.rawHeaders[i + 1]}\r\n`;
    client.write(`${headText}\r\n`);
    if (uhead.length > 0) client.write(uhead);
    if (head.length > 0) usock.write(head);
    usock.pipe(client);
    client.pipe(usock);
    const closeBoth = () => {
      usock.destroy();
      client.destroy();
    };
    usock.on('error', closeBoth);
    client.on('error', closeBoth);
    usock.on('close', closeBoth);
    client.on('close', closeBoth);
    end({ statusCode: ures.statusCode ?? 101 });
  });

  upstream.on('response', (ures) => {
    // Upstream declined the upgrade: relay its answer, delimited by closing the connection.
    const statusCode = ures.statusCode ?? 502;
    let headText = `HTTP/1.1 ${statusCode} ${ures.statusMessage ?? ''}\r\n`;
    const headers = forwardableHeaders(ures.rawHeaders);
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (headers[i]?.toLowerCase() !== 'content-length') headText += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    client.write(`${headText}Connection: close\r\n\r\n`);
    ures.pipe(client);
    ures.on('error', () => client.destroy());
    end({ statusCode });
  });

  upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
  upstream.on('error', (err) => {
    if (outcome.over) {
      client.destroy();
      return;
    }
    outcome.failed((err as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? 504 : 502, describe(err));
  });
  client.on('close', () => {
    if (!outcome.over) {
      upstream.destroy();
      end({ statusCode: 0, error: 'client closed the connection' });
    }
  });
  upstream.end();
  return upstream;
}
