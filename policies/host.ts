/**
 * Host canonicalisation and host-pattern matching (DESIGN §5).
 *
 * Raw hosts reach the proxy in every form a client can produce (`2130706433`,
 * `0x7f.1`, `[::ffff:7f00:1]`, `LOCALHOST.`, Unicode). Comparing strings as
 * they arrive would let one destination hide behind another spelling, so both
 * hosts and patterns go through the same WHATWG URL host parser that clients
 * and resolvers follow, and only the canonical forms are ever compared.
 */
import { isIP } from 'node:net';

const DOMAIN_NAME = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
const DOTTED_IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;
// Characters the URL parser would quietly reinterpret (userinfo, paths, escapes).
const REFUSED_CHARACTERS = /[@/\\?#%\s\u0000-\u001f\u007f]/u;

/**
 * The canonical form of a host, or null when it is not a plain host:
 * lower-case, one trailing dot removed, IDN as punycode, every IPv4 spelling
 * as a dotted quad, IPv4-mapped IPv6 as its IPv4 address, other IPv6 compressed
 * in brackets. Userinfo, ports, paths and anything unparseable are refused.
 */
export function canonicalHost(raw: string): string | null {
  if (raw.length === 0 || raw.length > 1024 || REFUSED_CHARACTERS.test(raw)) return null;
  let candidate = raw;
  // A bare IPv6 literal (`::ffff:127.0.0.1`) has colons the URL parser would read as a port.
  if (!candidate.startsWith('[') && candidate.split(':').length > 2) candidate = `[${candidate}]`;
  else if (!candidate.startsWith('[') && candidate.includes(':')) return null;

  let url: URL;
  try {
    url = new URL(`http://${candidate}/`);
  } catch {
    return null;
  }
  if (url.username !== '' || url.password !== '' || url.port !== '' || url.pathname !== '/') return null;

  let host = url.hostname;
  if (host.startsWith('[')) return canonicalIpv6(host);
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (DOTTED_IPV4.test(host)) return host;
  if (host.length > 253 || !DOMAIN_NAME.test(host)) return null;
  return host;
}

/** True for IPv4 and IPv6 literals, bracketed or not. */
export function isIpLiteral(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return isIP(bare) !== 0;
}

/** `[::ffff:7f00:1]` → `127.0.0.1`; other IPv6 literals stay as the URL parser compressed them. */
function canonicalIpv6(bracketed: string): string {
  const mapped = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(bracketed);
  if (mapped === null) return bracketed;
  const high = Number.parseInt(mapped[1] ?? '0', 16);
  const low = Number.parseInt(mapped[2] ?? '0', 16);
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** A host pattern ready to match canonical hosts. */
export type HostPattern =
  | { kind: 'any'; text: '*' }
  | { kind: 'exact'; text: string }
  | { kind: 'subdomains'; text: string; suffix: string };

export type HostPatternResult = { ok: true; pattern: HostPattern } | { ok: false; problem: string };

/**
 * Parses and canonicalises one host pattern (no port). Only three shapes are
 * meaningful: `*`, an exact host, and `*.` followed by a domain. A wildcard
 * anywhere else (`api.*.com`, `a*b.com`) is refused rather than guessed at.
 */
export function parseHostPattern(raw: string): HostPatternResult {
  if (raw.length === 0) return { ok: false, problem: 'empty host pattern' };
  if (raw === '*') return { ok: true, pattern: { kind: 'any', text: '*' } };
  const isSubdomainPattern = raw.startsWith('*.');
  const base = isSubdomainPattern ? raw.slice(2) : raw;
  if (base.includes('*')) {
    return { ok: false, problem: `"${raw}" has a wildcard that is not a whole leading label (only "*" or "*.example.com" are allowed)` };
  }
  const canonical = canonicalHost(base);
  if (canonical === null) return { ok: false, problem: `"${raw}" is not a valid host name` };
  if (!isSubdomainPattern) return { ok: true, pattern: { kind: 'exact', text: canonical } };
  if (isIpLiteral(canonical) || /^\d+$/.test(canonical.slice(canonical.lastIndexOf('.') + 1))) {
    return { ok: false, problem: `"${raw}" puts a wildcard on an IP address; IP literals match only exactly` };
  }
  return { ok: true, pattern: { kind: 'subdomains', text: `*.${canonical}`, suffix: `.${canonical}` } };
}

/** Whether a canonical host matches a pattern. Wildcard subdomains never match IP literals. */
export function hostMatches(pattern: HostPattern, host: string): boolean {
  switch (pattern.kind) {
    case 'any':
      return true;
    case 'exact':
      return host === pattern.text;
    case 'subdomains':
      return !isIpLiteral(host) && host.endsWith(pattern.suffix) && host.length > pattern.suffix.length;
  }
}

/** An `allowedDomains` entry: a host pattern and the one port it names, if any. */
export interface DomainEntry {
  host: HostPattern;
  /** null: the default web ports (80 and 443) only. */
  port: number | null;
}

export type DomainEntryResult = { ok: true; entry: DomainEntry } | { ok: false; problem: string };

export const DEFAULT_PORTS: readonly number[] = [80, 443];

/** Parses `host`, `host:port`, `[v6]:port` or a bare IPv6 literal. */
export function parseDomainEntry(raw: string): DomainEntryResult {
  let hostPart = raw;
  let portPart: string | null = null;
  const bracketed = /^(\[[^\]]*\])(?::(.*))?$/.exec(raw);
  if (bracketed !== null) {
    hostPart = bracketed[1] ?? '';
    portPart = bracketed[2] ?? null;
  } else if (raw.split(':').length === 2) {
    const colon = raw.lastIndexOf(':');
    hostPart = raw.slice(0, colon);
    portPart = raw.slice(colon + 1);
  }
  const parsedHost = parseHostPattern(hostPart);
  if (!parsedHost.ok) return parsedHost;
  if (portPart === null) return { ok: true, entry: { host: parsedHost.pattern, port: null } };
  const port = parsePort(portPart);
  if (port === null) return { ok: false, problem: `"${raw}" has a bad port "${portPart}" (expected 1-65535)` };
  return { ok: true, entry: { host: parsedHost.pattern, port } };
}

/** Decimal 1–65535 without sign, leading zeros or spaces. */
export function parsePort(text: string): number | null {
  if (!/^[1-9]\d{0,4}$/.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}
