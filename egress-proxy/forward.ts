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
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { authorityFor, ipLiteralOf } from './canonical-host.ts';
import type { DialTarget } from './dial-target.ts';
import { forwardableHeaders, upgradeResponseProblem } from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import type { UpstreamFailureStatus } from './responder.ts';
import { proxyHeaders, tunnelledConnection } from './upstream-proxy.ts';
import type { UpstreamProxy } from './upstream-proxy.ts';
import type { CaptureBudget, CaptureTicket } from './capture-budget.ts';

/** An upstream that goes quiet this long is given up on. */
const UPSTREAM_IDLE_MS = 60_000;

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
 * Hold the response (up to `maxBytes` on the wire), or only its last
 * `tailBytes` (the rest streams on as it comes), and hand what was held to
 * `onBody` before the client gets it. Only for responses a policy must read
 * (registry metadata, wheels); everything else streams. What is held counts
 * against the session's `budget` until the client has taken it.
 */
export interface ResponseCapture {
  maxBytes: number;
  tailBytes?: number;
  budget: CaptureBudget;
  /** `bodyOffset`: where `body` starts in the whole response (non-zero when only the tail was held). */
  onBody(statusCode: number, headers: http.IncomingHttpHeaders, body: Buffer, bodyOffset: number): Promise<void>;
}

/** Pieces a held body is written in, so the client's pace sets how fast it goes. */
const WRITE_SLICE_BYTES = 64 * 1024;

export interface ForwardResult {
  statusCode: number;
  /** Set when the upstream could not be reached or broke off. */
  error?: string;
}

/**
 * How a forwarded exchange ends, reported once: `failed` while the client can
 * still be answered (the responder writes the 502/504), `ended` otherwise.
 */
export interface ForwardOutcome {
  failed(status: UpstreamFailureStatus, reason: string): void;
  ended(result: ForwardResult): void;
}

/** Wraps an outcome so only its first report counts. */
function once(outcome: ForwardOutcome): ForwardOutcome & { readonly over: boolean } {
  let over = false;
  return {
    get over() {
      return over;
    },
    failed(status, reason) {
      if (over) return;
      over = true;
      outcome.failed(status, reason);
    },
    ended(result) {
      if (over) return;
      over = true;
      outcome.ended(result);
    },
  };
}

type UpstreamRequestOptions = https.RequestOptions & Pick<tls.ConnectionOptions, 'secureContext' | 'ALPNProtocols'>;

function requestOptions(req: http.IncomingMessage, route: UpstreamRoute, agent: http.Agent | false, extraHeaders: string[]): UpstreamRequestOptions {
  const { dest, target } = route;
  const headers = ['Host', authorityFor(dest.host, dest.port, dest.scheme), ...forwardableHeaders(req.rawHeaders), ...extraHeaders];
  // A chunked request body stays chunked: without the header Node would send a GET body unframed.
  if (req.headers['transfer-encoding'] !== undefined) headers.push('Transfer-Encoding', 'chunked');
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
    options.ALPNProtocols = ['http/1.1'];
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

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}

/** Forwards one ordinary request; `onEnd` is called once, when the exchange is over. */
export function forwardRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  route: UpstreamRoute,
  agent: http.Agent,
  report: ForwardOutcome,
  capture?: ResponseCapture,
): http.ClientRequest | null {
  // A capture's slot is taken before anything goes upstream, and given back however the exchange ends.
  const ticket = capture?.budget.open();
  if (ticket === null) {
    const { sessionCaptures } = (capture as ResponseCapture).budget.limits;
    report.failed(503, `this sandbox already has ${sessionCaptures} registry responses being read by the policy in flight; retry when one has finished`);
    return null;
  }
  const outcome = once(ticket === undefined ? report : closingTicket(report, ticket));
  const end = (result: ForwardResult) => outcome.ended(result);
  let upstream: http.ClientRequest;
  try {
    upstream = send(route, requestOptions(req, route, agent, []));
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
    try {
      res.writeHead(statusCode, ures.statusMessage, forwardableHeaders(ures.rawHeaders));
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
    ures.pipe(res);
  });

  upstream.on('timeout', () => upstream.destroy(Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' })));
  upstream.on('error', (err) => {
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
  req.pipe(upstream);
  return upstream;
}

/** Ends the capture's share of the budget with the exchange. */
function closingTicket(report: ForwardOutcome, ticket: CaptureTicket): ForwardOutcome {
  return {
    failed(status, reason) {
      ticket.close();
      report.failed(status, reason);
    },
    ended(result) {
      ticket.close();
      report.ended(result);
    },
  };
}

function budgetExceeded(capture: ResponseCapture): string {
  return `registry responses being read by the policy for this sandbox would hold more than ${capture.budget.limits.sessionBytes} bytes; retry when the client has read the others`;
}

/**
 * Writes `pieces` to the client as fast as it reads them: the next piece
 * only after the previous one drained, each piece's bytes given back to the
 * budget once the socket has taken them (`release` false: given back at
 * the end, because they are slices of one buffer freed only as a whole).
 */
function writePaced(res: http.ServerResponse, pieces: Buffer[], ticket: CaptureTicket, release: boolean, done: () => void): void {
  const next = (): void => {
    while (pieces.length > 0) {
      if (res.destroyed) return;
      const piece = pieces.shift() as Buffer;
      const more = res.write(piece, () => {
        if (release) ticket.release(piece.length);
      });
      if (!more) {
        res.once('drain', next);
        return;
      }
    }
    done();
  };
  next();
}

function slices(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; at += WRITE_SLICE_BYTES) out.push(body.subarray(at, at + WRITE_SLICE_BYTES));
  return out;
}

/**
 * Holds the whole upstream answer (within `maxBytes` and the session's
 * budget), lets `capture` read it, then sends it on unchanged, paced by the
 * client. The chunks are joined once and dropped, so the body is held once.
 */
function relayCaptured(ures: http.IncomingMessage, res: http.ServerResponse, capture: ResponseCapture, ticket: CaptureTicket, outcome: ForwardOutcome): void {
  const statusCode = ures.statusCode ?? 502;
  let chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  const fail = (status: UpstreamFailureStatus, reason: string) => {
    if (failed) return;
    failed = true;
    chunks = [];
    ures.destroy();
    outcome.failed(status, reason);
  };
  ures.on('data', (chunk: Buffer) => {
    if (failed) return;
    size += chunk.length;
    if (size > capture.maxBytes) {
      fail(502, `response the policy must read (registry metadata or a wheel) exceeds ${capture.maxBytes} bytes`);
      return;
    }
    if (!ticket.reserve(chunk.length)) {
      fail(503, budgetExceeded(capture));
      return;
    }
    chunks.push(chunk);
  });
  ures.on('error', (err) => fail(502, `upstream broke off: ${describe(err)}`));
  ures.on('end', () => {
    if (failed) return;
    const body = chunks.length === 1 ? (chunks[0]) : Buffer.concat(chunks, size);
    chunks = [];
    void capture
      .onBody(statusCode, ures.headers, body, 0)
      .catch(() => undefined)
      .then(() => {
        if (res.destroyed) return;
        try {
          const headers = forwardableHeaders(ures.rawHeaders).filter((_, i, all) => !isFramingHeader(all, i));
          if (statusCode !== 204 && statusCode !== 304) headers.push('Content-Length', String(body.length));
          res.writeHead(statusCode, ures.statusMessage, headers);
        } catch (err) {
          outcome.failed(502, `upstream response rejected: ${describe(err)}`);
          return;
        }
        res.on('finish', () => outcome.ended({ statusCode }));
        writePaced(res, slices(body), ticket, false, () => res.end());
      });
  });
}

/**
 * Streams the upstream answer to the client, paced by the client, holding
 * back only its last `tailBytes`: when the upstream has ended, `capture`
 * reads that tail, and only then does the client get it. Memory per
 * capture stays near `tailBytes` whatever the size of the file.
 */
function relayTail(ures: http.IncomingMessage, res: http.ServerResponse, capture: ResponseCapture, tailBytes: number, ticket: CaptureTicket, outcome: ForwardOutcome): void {
  const statusCode = ures.statusCode ?? 502;
  const held: Buffer[] = [];
  let heldSize = 0;
  let total = 0;
  let failed = false;
  let headSent = false;
  const fail = (status: UpstreamFailureStatus, reason: string) => {
    if (failed) return;
    failed = true;
    held.length = 0;
    ures.destroy();
    // Once the head is out only cutting the connection can tell the client.
    if (headSent) {
      res.destroy();
      outcome.ended({ statusCode, error: reason });
    } else outcome.failed(status, reason);
  };
  const sendHead = (): boolean => {
    if (headSent) return true;
    try {
      res.writeHead(statusCode, ures.statusMessage, forwardableHeaders(ures.rawHeaders));
    } catch (err) {
      fail(502, `upstream response rejected: ${describe(err)}`);
      return false;
    }
    headSent = true;
    res.on('finish', () => outcome.ended({ statusCode }));
    return true;
  };
  ures.on('data', (chunk: Buffer) => {
    if (failed) return;
    if (!ticket.reserve(chunk.length)) {
      fail(503, budgetExceeded(capture));
      return;
    }
    total += chunk.length;
    held.push(chunk);
    heldSize += chunk.length;
    // Everything older than the tail goes on now; the client's pace decides when the next chunk is read.
    const ahead: Buffer[] = [];
    while (held.length > 0 && heldSize - (held[0]).length >= tailBytes) {
      const piece = held.shift() as Buffer;
      heldSize -= piece.length;
      ahead.push(piece);
    }
    if (ahead.length === 0 || !sendHead()) return;
    ures.pause();
    writePaced(res, ahead, ticket, true, () => ures.resume());
  });
  ures.on('error', (err) => fail(502, `upstream broke off: ${describe(err)}`));
  ures.on('end', () => {
    if (failed) return;
    const tail = held.length === 1 ? (held[0]) : Buffer.concat(held, heldSize);
    held.length = 0;
    void capture
      .onBody(statusCode, ures.headers, tail, total - tail.length)
      .catch(() => undefined)
      .then(() => {
        if (res.destroyed || !sendHead()) return;
        writePaced(res, slices(tail), ticket, false, () => res.end());
      });
  });
}

/** Content-Length is set again from the buffered body, so the upstream's (and any chunking) is dropped. */
function isFramingHeader(pairs: readonly string[], index: number): boolean {
  const nameIndex = index % 2 === 0 ? index : index - 1;
  const name = pairs[nameIndex]?.toLowerCase();
  return name === 'content-length' || name === 'transfer-encoding';
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
  const outcome = once(report);
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
