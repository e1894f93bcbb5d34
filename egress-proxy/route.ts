/**
 * Where a request is going, decided from the request alone: no socket, no
 * policy, no DNS. A request on the proxy's own socket names its destination
 * in absolute form; a request inside a tunnel goes to the CONNECT target and
 * nowhere else. Also the pure halves of the other answers the proxy gives by
 * itself: what an unparseable request is refused with, and which path is
 * sent upstream.
 */
import type { IncomingMessage } from 'node:http';
import { authorityFor } from './canonical-host.ts';
import { refusal } from './errors.ts';
import type { Refusal } from './errors.ts';
import { checkHostHeader, destinationOf, splitAbsoluteForm, urlOf } from './http-checks.ts';
import type { Destination } from './http-checks.ts';
import type { CanonicalHostFn } from './types.ts';

/** A refused route names the destination when it is known (a tunnel's target), so the log shows its host. */
export type Route = { kind: 'refused'; refusal: Refusal; dest?: Destination } | { kind: 'route'; dest: Destination; path: string };

/** Absolute-form request to the proxy itself: `GET http://host/path`. */
export function proxyRoute(req: IncomingMessage, canonicalHost: CanonicalHostFn): Route {
  const target = splitAbsoluteForm(req.url ?? '');
  if (target === null) return { kind: 'refused', refusal: refusal(400, 'unsupported-request', 'Not a proxy request: use an absolute http:// URI or CONNECT') };
  if (target.scheme !== 'http') {
    return { kind: 'refused', refusal: refusal(400, 'unsupported-request', `Scheme ${target.scheme} is not proxied as a plain request; use CONNECT`) };
  }
  const d = destinationOf('http', target.authority, canonicalHost);
  if ('refusal' in d) return { kind: 'refused', refusal: d.refusal };
  const host = checkHostHeader(req, d.dest, canonicalHost);
  if (host !== null) return { kind: 'refused', refusal: host, dest: d.dest };
  return { kind: 'route', dest: d.dest, path: target.path };
}

/** A request inside a tunnel: its destination is the CONNECT target and nothing else. */
export function tunnelRoute(req: IncomingMessage, dest: Destination, canonicalHost: CanonicalHostFn): Route {
  const raw = req.url ?? '';
  let pathPart: string;
  if (raw.startsWith('/')) {
    pathPart = raw;
  } else {
    const target = splitAbsoluteForm(raw);
    if (target === null) return { kind: 'refused', refusal: refusal(400, 'unsupported-request', 'Request target must be origin-form (/path)'), dest };
    const d = destinationOf(dest.scheme, target.authority, canonicalHost);
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
  const host = checkHostHeader(req, dest, canonicalHost);
  if (host !== null) return { kind: 'refused', refusal: host, dest };
  return { kind: 'route', dest, path: pathPart };
}

/** The URL a refused request is logged under: the tunnel's target with the request's path, or the raw target on the proxy's socket. */
export function fallbackUrlOf(req: IncomingMessage, tunnel: Destination | null): string {
  if (tunnel === null) return req.url ?? '';
  return urlOf(tunnel, req.url?.startsWith('/') === true ? req.url : '/');
}

/** The destination an absolute-form http:// target names, or null. */
export function absoluteDestination(target: string, canonicalHost: CanonicalHostFn): Destination | null {
  const parsed = splitAbsoluteForm(target);
  if (parsed?.scheme !== 'http') return null;
  const d = destinationOf('http', parsed.authority, canonicalHost);
  return 'dest' in d ? d.dest : null;
}

/** What a request llhttp could not parse is refused with, and the status it gets (431 and 408 where those say it better). */
export function parseErrorRefusal(err: NodeJS.ErrnoException): { refusal: Refusal; status: number } {
  const detail = err.message.replace(/^Parse Error: /u, '');
  switch (err.code ?? '') {
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    // Also what llhttp says when Transfer-Encoding comes before Content-Length: the same smuggling, the same code.
    case 'HPE_INVALID_CONTENT_LENGTH':
      return { refusal: refusal(400, 'ambiguous-framing', `Ambiguous message framing (${detail})`), status: 400 };
    case 'HPE_HEADER_OVERFLOW':
      return { refusal: refusal(400, 'malformed-request', 'Request headers too large'), status: 431 };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { refusal: refusal(400, 'malformed-request', 'Request headers not received in time'), status: 408 };
    default:
      return { refusal: refusal(400, 'malformed-request', `Malformed request (${err.code ?? 'parse error'}: ${detail})`), status: 400 };
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
export function upstreamPath(rawPath: string, decidedPath: string | undefined): string | null {
  if (decidedPath === undefined) return rawPath;
  if (!decidedPath.startsWith('/') || !/^[\x21-\x7e]+$/u.test(decidedPath) || decidedPath.includes('?') || decidedPath.includes('#')) return null;
  const q = rawPath.indexOf('?');
  return q === -1 ? decidedPath : decidedPath + rawPath.slice(q);
}
