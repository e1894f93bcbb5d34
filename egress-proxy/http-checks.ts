/**
 * Pure checks and rewrites on HTTP/1.1 messages: where a request is going,
 * whether its framing is unambiguous, which headers may travel on. Nothing
 * here touches a socket.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { authorityFor, splitHostPort } from './canonical-host.ts';
import { refusal } from './errors.ts';
import type { Refusal } from './errors.ts';
import type { CanonicalHostFn } from './types.ts';

/** Where a request goes, as the proxy understood it. */
export interface Destination {
  scheme: 'http' | 'https';
  /** Host exactly as it arrived (CONNECT line or absolute-form URI): what `decide` gets. */
  rawHost: string;
  /** Canonical host: what is logged, mapped, resolved and sent as `Host`. */
  host: string;
  port: number;
}

export function defaultPort(scheme: 'http' | 'https'): number {
  return scheme === 'https' ? 443 : 80;
}

/** `https://api.stripe.com/v1/products`: canonical host, raw path. */
export function urlOf(dest: Destination, path: string): string {
  return `${dest.scheme}://${authorityFor(dest.host, dest.port, dest.scheme)}${path}`;
}

/** Values of one header in `rawHeaders`, however many times and in whatever case it was sent. */
function rawValues(rawHeaders: readonly string[], lowerName: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === lowerName) out.push(rawHeaders[i + 1] ?? '');
  }
  return out;
}

/**
 * Framing that two parsers could read differently is refused, not repaired:
 * Content-Length with Transfer-Encoding, repeated Content-Length, repeated
 * Host (Node keeps the first Host, an upstream might keep the last).
 * llhttp already rejects most of these; this is the second lock.
 */
export function checkFraming(req: IncomingMessage): Refusal | null {
  const raw = req.rawHeaders;
  const cl = rawValues(raw, 'content-length');
  const te = rawValues(raw, 'transfer-encoding');
  if (cl.length > 0 && te.length > 0) return refusal(400, 'ambiguous-framing', 'Both Content-Length and Transfer-Encoding are present');
  if (cl.length > 1) return refusal(400, 'ambiguous-framing', 'Content-Length is repeated');
  if (rawValues(raw, 'host').length > 1) return refusal(400, 'ambiguous-framing', 'Host header is repeated');
  return null;
}

/**
 * The Host header must name the destination (same canonical host, same
 * port). A missing Host is accepted only from HTTP/1.0 clients, as HTTP/1.1
 * requires it.
 */
export function checkHostHeader(req: IncomingMessage, dest: Destination, canonicalHost: CanonicalHostFn): Refusal | null {
  const values = rawValues(req.rawHeaders, 'host');
  const value = values[0];
  if (value === undefined) {
    return req.httpVersion === '1.0' ? null : refusal(400, 'malformed-request', 'Host header is missing');
  }
  const hp = splitHostPort(value.trim(), defaultPort(dest.scheme));
  const host = hp === null ? null : canonicalHost(hp.host);
  if (hp === null || host === null) return refusal(400, 'invalid-host', `Host header "${truncate(value, 100)}" is not a host`);
  if (host !== dest.host || hp.port !== dest.port) {
    return refusal(403, 'host-mismatch', `Host header names ${authorityFor(host, hp.port, dest.scheme)}, not ${authorityFor(dest.host, dest.port, dest.scheme)}`);
  }
  return null;
}

const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/su;

export interface AbsoluteTarget {
  scheme: string;
  authority: string;
  /** Origin-form path exactly as written after the authority (`/` when empty). */
  path: string;
}

/**
 * Splits an absolute-form request target without re-parsing its path: the
 * WHATWG parser would resolve `/a/%2e%2e/b` to `/b`, and the path checked
 * must be the path sent.
 */
export function splitAbsoluteForm(target: string): AbsoluteTarget | null {
  const m = ABSOLUTE_FORM.exec(target);
  if (m === null) return null;
  const rest = m[3] ?? '';
  if (rest.startsWith('#')) return null;
  return { scheme: (m[1] ?? '').toLowerCase(), authority: m[2] ?? '', path: rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest };
}

/** Resolves the authority of an absolute-form target to a destination; null with a refusal when it is no usable host. */
export function destinationOf(
  scheme: 'http' | 'https',
  authority: string,
  canonicalHost: CanonicalHostFn,
): { dest: Destination } | { refusal: Refusal } {
  if (authority.includes('@')) return { refusal: refusal(400, 'invalid-host', 'User information in the request target is not allowed') };
  const hp = splitHostPort(authority, defaultPort(scheme));
  const host = hp === null ? null : canonicalHost(hp.host);
  if (hp === null || host === null) return { refusal: refusal(400, 'invalid-host', `"${truncate(authority, 100)}" is not a host[:port]`) };
  return { dest: { scheme, rawHost: hp.host, host, port: hp.port } };
}

/**
 * Hop-by-hop headers are the proxy's to set, never the client's (RFC 9110
 * §7.6.1), and so are the ones the Connection header names. `Host` is always
 * rewritten to the destination; `Expect` is answered by the proxy itself.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'expect',
  // Only meaningful with an h2c upgrade, which is never relayed; sent alone it still primes an h2c server.
  'http2-settings',
]);

/** Header pairs, as received minus hop-by-hop ones, in their original order and case. */
export function forwardableHeaders(rawHeaders: readonly string[]): string[] {
  // Built only when Connection names a header that is not hop-by-hop anyway (rare): this runs twice per request.
  let named: Set<string> | undefined;
  for (const v of rawValues(rawHeaders, 'connection')) {
    for (const token of v.split(',')) {
      const lower = token.trim().toLowerCase();
      if (!HOP_BY_HOP.has(lower)) (named ??= new Set()).add(lower);
    }
  }
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named?.has(lower) === true) continue;
    out.push(name, rawHeaders[i + 1] ?? '');
  }
  return out;
}

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{22}==$/u;

/**
 * The only upgrade the proxy relays is a WebSocket handshake (RFC 6455 §4.1):
 * `GET`, exactly one `websocket` token, one well-formed `Sec-WebSocket-Key`,
 * `Sec-WebSocket-Version: 13`. Anything else (h2c above all, which would
 * carry further requests the policy never sees) is refused.
 */
export function checkWebSocketUpgrade(req: IncomingMessage): Refusal | null {
  const raw = req.rawHeaders;
  const tokens = rawValues(raw, 'upgrade').flatMap((v) => v.split(',')).map((t) => t.trim()).filter((t) => t !== '');
  const named = truncate(tokens.join(', '), 100);
  if (tokens.length !== 1 || tokens[0]?.toLowerCase() !== 'websocket') {
    return refusal(403, 'unsupported-upgrade', `Upgrade to "${named}" is not allowed: only a single WebSocket upgrade is relayed`);
  }
  if (req.method !== 'GET') return refusal(403, 'unsupported-upgrade', `A WebSocket upgrade must use GET, not ${truncate(req.method ?? '', 32)}`);
  const keys = rawValues(raw, 'sec-websocket-key');
  if (keys.length !== 1 || !WEBSOCKET_KEY.test(keys[0]?.trim() ?? '')) {
    return refusal(403, 'unsupported-upgrade', 'A WebSocket upgrade needs exactly one valid Sec-WebSocket-Key');
  }
  const versions = rawValues(raw, 'sec-websocket-version');
  if (versions.length !== 1 || versions[0]?.trim() !== '13') {
    return refusal(403, 'unsupported-upgrade', 'A WebSocket upgrade needs Sec-WebSocket-Version: 13');
  }
  return null;
}

/** The Sec-WebSocket-Accept a server must answer `key` with. */
export function webSocketAccept(key: string): string {
  return createHash('sha1').update(`${key.trim()}${WEBSOCKET_GUID}`).digest('base64');
}

/**
 * Why a `101` answering a WebSocket handshake cannot be trusted, or null: it
 * must switch to `websocket` and prove it read our key. Anything else means
 * the upstream speaks some other protocol on the connection from here on.
 */
export function upgradeResponseProblem(requestHeaders: IncomingHttpHeaders, responseHeaders: IncomingHttpHeaders): string | null {
  const upgrade = String(responseHeaders.upgrade ?? '').trim().toLowerCase();
  if (upgrade !== 'websocket') return `upstream switched to "${truncate(upgrade, 100)}", not websocket`;
  const key = requestHeaders['sec-websocket-key'];
  const accept = responseHeaders['sec-websocket-accept'];
  if (typeof key !== 'string' || typeof accept !== 'string' || accept.trim() !== webSocketAccept(key)) {
    return 'upstream answered 101 without the matching Sec-WebSocket-Accept';
  }
  return null;
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}

/** The first line of an unparseable request, reduced to something safe to log. */
export function requestLineOf(rawPacket: Buffer | undefined): { method: string; target: string } {
  if (rawPacket === undefined) return { method: '', target: '' };
  const line = rawPacket.subarray(0, 4096).toString('latin1').split('\r\n', 1)[0] ?? '';
  const [method = '', target = ''] = line.split(' ');
  const clean = (s: string, max: number) => truncate(s.replace(/[^\x21-\x7e]/gu, '?'), max);
  return { method: clean(method, 32), target: clean(target, 2048) };
}
