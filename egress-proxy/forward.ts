/**
 * Sends an admitted request to the address that was checked and streams the
 * answer back. Built on node:http/https directly (not proxy-chain's forward,
 * which hands `request.url` to the URL parser and so may send a path other
 * than the one checked): the path goes out exactly as the policy checked it
 * (see upstreamPath in session.ts), the `Host` is the destination's, and
 * bodies are piped, never buffered.
 */
import http from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { authorityFor, ipLiteralOf } from './canonical-host.ts';
import type { DialTarget } from './dial-target.ts';
import { forwardableHeaders } from './http-checks.ts';
import type { Destination } from './http-checks.ts';

/** An upstream that goes quiet this long is given up on. */
const UPSTREAM_IDLE_MS = 60_000;

export interface UpstreamRoute {
  dest: Destination;
  /** Origin-form path exactly as checked. */
  path: string;
  target: DialTarget;
  /** Upstream trust: system roots plus the operator's extra CAs, built once. */
  secureContext: tls.SecureContext;
}

/**
 * Hold the whole response (up to `maxBytes` on the wire) and hand it to
 * `onBody` before the client gets any of it. Only for responses a policy must
 * read (registry metadata); everything else streams.
 */
export interface ResponseCapture {
  maxBytes: number;
  onBody(statusCode: number, headers: http.IncomingHttpHeaders, body: Buffer): Promise<void>;
}

export interface ForwardResult {
  statusCode: number;
  /** Set when the upstream could not be reached or broke off. */
  error?: string;
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
  return options;
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
  onEnd: (result: ForwardResult) => void,
  capture?: ResponseCapture,
): http.ClientRequest | null {
  let ended = false;
  const end = (result: ForwardResult) => {
    if (ended) return;
    ended = true;
    onEnd(result);
  };
  let upstream: http.ClientRequest;
  try {
    upstream = send(route, requestOptions(req, route, agent, []));
  } catch (err) {
    failBeforeResponse(res, 502, describe(err));
    end({ statusCode: 502, error: describe(err) });
    return null;
  }

  upstream.on('response', (ures) => {
    const statusCode = ures.statusCode ?? 502;
    if (capture !== undefined) {
      relayCaptured(ures, res, capture, end);
      return;
    }
    try {
      res.writeHead(statusCode, ures.statusMessage, forwardableHeaders(ures.rawHeaders));
    } catch (err) {
      ures.destroy();
      failBeforeResponse(res, 502, describe(err));
      end({ statusCode: 502, error: `upstream response rejected: ${describe(err)}` });
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
      const status = (err as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? 504 : 502;
      failBeforeResponse(res, status, describe(err));
      end({ statusCode: status, error: describe(err) });
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

/** Buffers the upstream answer, lets `capture` read it, then sends it on unchanged. */
function relayCaptured(ures: http.IncomingMessage, res: http.ServerResponse, capture: ResponseCapture, end: (result: ForwardResult) => void): void {
  const statusCode = ures.statusCode ?? 502;
  const chunks: Buffer[] = [];
  let size = 0;
  let failed = false;
  ures.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= capture.maxBytes) {
      chunks.push(chunk);
      return;
    }
    if (failed) return;
    failed = true;
    ures.destroy();
    const reason = `response the policy must read (registry metadata or a wheel) exceeds ${capture.maxBytes} bytes`;
    failBeforeResponse(res, 502, reason);
    end({ statusCode: 502, error: reason });
  });
  ures.on('error', (err) => {
    if (failed) return;
    failed = true;
    failBeforeResponse(res, 502, describe(err));
    end({ statusCode: 502, error: `upstream broke off: ${describe(err)}` });
  });
  ures.on('end', () => {
    if (failed) return;
    const body = Buffer.concat(chunks);
    void capture
      .onBody(statusCode, ures.headers, body)
      .catch(() => undefined)
      .then(() => {
        if (res.destroyed) return;
        try {
          const headers = forwardableHeaders(ures.rawHeaders).filter((_, i, all) => !isFramingHeader(all, i));
          if (statusCode !== 204 && statusCode !== 304) headers.push('Content-Length', String(body.length));
          res.writeHead(statusCode, ures.statusMessage, headers);
        } catch (err) {
          failBeforeResponse(res, 502, describe(err));
          end({ statusCode: 502, error: `upstream response rejected: ${describe(err)}` });
          return;
        }
        res.on('finish', () => end({ statusCode }));
        res.end(body);
      });
  });
}

/** Content-Length is set again from the buffered body, so the upstream's (and any chunking) is dropped. */
function isFramingHeader(pairs: readonly string[], index: number): boolean {
  const nameIndex = index % 2 === 0 ? index : index - 1;
  const name = pairs[nameIndex]?.toLowerCase();
  return name === 'content-length' || name === 'transfer-encoding';
}

function failBeforeResponse(res: http.ServerResponse, status: number, reason: string): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: status === 504 ? 'upstream timed out' : 'upstream unavailable', reason });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Egress-Error': 'upstream' });
  res.end(body);
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
  onEnd: (result: ForwardResult) => void,
): http.ClientRequest | null {
  let ended = false;
  const end = (result: ForwardResult) => {
    if (ended) return;
    ended = true;
    onEnd(result);
  };
  let upstream: http.ClientRequest;
  try {
    upstream = send(route, requestOptions(req, route, false, ['Connection', 'Upgrade', 'Upgrade', req.headers.upgrade ?? '']));
  } catch (err) {
    client.destroy();
    end({ statusCode: 502, error: describe(err) });
    return null;
  }

  upstream.on('upgrade', (ures, usock, uhead) => {
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

  upstream.on('timeout', () => upstream.destroy(new Error('upstream timed out')));
  upstream.on('error', (err) => {
    client.destroy();
    end({ statusCode: 502, error: describe(err) });
  });
  client.on('close', () => {
    if (!ended) {
      upstream.destroy();
      end({ statusCode: 0, error: 'client closed the connection' });
    }
  });
  upstream.end();
  return upstream;
}
