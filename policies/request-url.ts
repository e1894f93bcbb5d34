/**
 * An egress request from a method and a URL as a person types it (the
 * `explain` command, the MCP `check_egress` tool). The URL is split by hand
 * rather than with `new URL`, which would already canonicalise host and path
 * and so hide what the matcher does with them.
 */
import { parsePort } from './host.ts';
import type { EgressRequest } from './types.ts';

export class EgressUrlError extends Error {
  override readonly name = 'EgressUrlError';
}

export function egressRequestFromUrl(method: string, url: string, headers: Record<string, string[]> = {}): EgressRequest {
  const match = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(url);
  if (match === null) throw new EgressUrlError(`URL must start with http:// or https://: ${url}`);
  const scheme = (match[1] ?? '').toLowerCase() === 'https' ? 'https' : 'http';
  const authority = match[2] ?? '';
  const rest = match[3] ?? '';
  let host = authority;
  let portText: string | null = null;
  const bracketed = /^(.*\])(?::(.*))?$/.exec(authority);
  if (bracketed !== null) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? null;
  } else if (authority.split(':').length === 2) {
    host = authority.slice(0, authority.lastIndexOf(':'));
    portText = authority.slice(authority.lastIndexOf(':') + 1);
  }
  const port = portText === null ? (scheme === 'https' ? 443 : 80) : parsePort(portText);
  if (port === null) throw new EgressUrlError(`bad port in ${url}`);
  return { method, host, port, scheme, path: rest.startsWith('/') ? rest : `/${rest}`, headers };
}
