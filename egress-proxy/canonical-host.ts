/**
 * Authorities as they arrive on CONNECT lines, absolute-form URIs and Host
 * headers are raw. The host part is canonicalised by policies' canonicalHost
 * (the same function the decision uses, so the policy and the socket never
 * disagree about which host is meant); this module only splits and joins.
 */
import { isIP } from 'node:net';
import { canonicalHost as policiesCanonicalHost } from '../policies/index.ts';
import type { CanonicalHostFn } from './types.ts';

/** The default canonicaliser: the one policies' decide applies to `EgressRequest.host`. */
export const defaultCanonicalHost: CanonicalHostFn = policiesCanonicalHost;


export interface HostPort {
  /** Host exactly as written (brackets kept for IPv6). */
  host: string;
  port: number;
}

/**
 * Splits `host:port` / `[v6]:port` / `host` the way a CONNECT line or Host
 * header writes it. The port must be plain decimal digits (no `+`, no hex):
 * `Number()` alone would accept `0x1bb`.
 */
export function splitHostPort(authority: string, defaultPort?: number): HostPort | null {
  let host: string;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    if (end < 0) return null;
    host = authority.slice(0, end + 1);
    const rest = authority.slice(end + 1);
    if (rest.length > 0) {
      if (!rest.startsWith(':')) return null;
      portText = rest.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon >= 0) {
      host = authority.slice(0, colon);
      portText = authority.slice(colon + 1);
      // A second colon outside brackets is an unbracketed IPv6 address or junk.
      if (host.includes(':')) return null;
    } else {
      host = authority;
    }
  }
  if (host.length === 0) return null;
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) return null;
    port = defaultPort;
  } else {
    if (!/^[0-9]{1,5}$/.test(portText)) return null;
    port = Number(portText);
    if (port < 1 || port > 65535) return null;
  }
  return { host, port };
}

/** The bare address of a canonical IP-literal host (brackets stripped), or null for a name. */
export function ipLiteralOf(canonicalHost: string): string | null {
  const bare = canonicalHost.startsWith('[') && canonicalHost.endsWith(']') ? canonicalHost.slice(1, -1) : canonicalHost;
  return isIP(bare) === 0 ? null : bare;
}

/** `host` or `host:port` for URLs and Host headers: the default port of the scheme is left out. */
export function authorityFor(canonicalHost: string, port: number, scheme: 'http' | 'https'): string {
  const defaultPort = scheme === 'https' ? 443 : 80;
  return port === defaultPort ? canonicalHost : `${canonicalHost}:${port}`;
}
