/**
 * Host names as they arrive on CONNECT lines, absolute-form URIs and Host
 * headers are raw: `2130706433`, `0x7f.1`, `[::ffff:7f00:1]`, `LOCALHOST.`,
 * `xn--…` or Unicode. Everything the proxy matches, logs or connects to uses
 * the canonical form produced here, so the policy and the socket never
 * disagree about which host is meant.
 */
import { isIP } from 'node:net';

/**
 * Characters a raw host may contain before the URL parser sees it. The WHATWG
 * parser would happily read `evil@api.stripe.com` or `a/b` as a URL with a
 * different host, so userinfo, path, query, fragment, percent-escapes and
 * whitespace are refused here. Non-ASCII is allowed (IDN) and goes to punycode.
 */
const RAW_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s@/\\?#%[\]:<>^|"'`{}\x00-\x1f\x7f]+)$/u;

/**
 * WHATWG-URL based canonical host: lower case, IPv4 in any notation turned into
 * dotted decimal, IPv6 compressed and bracketed, IDN to punycode, one trailing
 * dot removed. Returns null for anything that is not a plain host.
 */
export function defaultCanonicalHost(raw: string): string | null {
  if (raw.length === 0 || raw.length > 255 || !RAW_HOST.test(raw)) return null;
  let hostname: string;
  try {
    hostname = new URL(`http://${raw}/`).hostname;
  } catch {
    return null;
  }
  if (hostname.endsWith('.')) hostname = hostname.slice(0, -1);
  // An empty label (`a..b`, `host..`) is no host anyone can mean.
  if (hostname.length === 0 || hostname.startsWith('.') || hostname.includes('..')) return null;
  return hostname;
}

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
