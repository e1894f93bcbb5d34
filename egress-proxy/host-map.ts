/**
 * Operator host mapping, curl `--resolve` style: `api.stripe.com=127.0.0.1:9443`
 * sends every connection for api.stripe.com to that address, and
 * `api.stripe.com:80=127.0.0.1:9080` only those for port 80. It is the only
 * way a sandbox reaches loopback or private addresses, so entries are
 * validated hard and keyed by canonical host.
 */
import { isIP } from 'node:net';
import { defaultCanonicalHost, splitHostPort } from './canonical-host.ts';
import type { CanonicalHostFn } from './types.ts';
import { EgressError } from './errors.ts';

export interface MappedAddress {
  /** IP address (no brackets). */
  address: string;
  port: number;
}

/** Keys: `host` or `host:port` (host canonical). */
export type HostMapInput = ReadonlyMap<string, MappedAddress> | Readonly<Record<string, MappedAddress>>;

export class HostMap {
  readonly #byKey = new Map<string, MappedAddress>();

  constructor(input: HostMapInput = new Map(), canonicalHost: CanonicalHostFn = defaultCanonicalHost) {
    const entries: Array<[string, MappedAddress]> =
      input instanceof Map ? [...(input as ReadonlyMap<string, MappedAddress>).entries()] : Object.entries(input as Readonly<Record<string, MappedAddress>>);
    const problems: string[] = [];
    for (const [key, target] of entries) {
      const hp = splitHostPort(key, 0);
      const host = hp === null ? null : canonicalHost(hp.host);
      if (hp === null || host === null) {
        problems.push(`${key}: not a host[:port]`);
        continue;
      }
      if (isIP(target.address) === 0 || !Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
        problems.push(`${key}: target must be an IP address and a port 1-65535`);
        continue;
      }
      this.#byKey.set(hp.port === 0 ? host : `${host}:${hp.port}`, { address: target.address, port: target.port });
    }
    if (problems.length > 0) throw new EgressError('ERR_EGRESS_HOST_MAP', `invalid host map: ${problems.join('; ')}`);
  }

  /** The mapping for a canonical host and port: `host:port` wins over `host`. */
  lookup(canonicalHost: string, port: number): MappedAddress | undefined {
    return this.#byKey.get(`${canonicalHost}:${port}`) ?? this.#byKey.get(canonicalHost);
  }

  get size(): number {
    return this.#byKey.size;
  }
}

/**
 * Parses EGRESS_HOST_MAP: `host[:port]=address:port` pairs, comma-separated
 * (IPv6 targets bracketed: `h=[::1]:8443`). Every bad pair is named at once.
 */
export function parseHostMap(text: string): Map<string, MappedAddress> {
  const out = new Map<string, MappedAddress>();
  const problems: string[] = [];
  for (const pair of text.split(',').map((p) => p.trim()).filter((p) => p.length > 0)) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? '' : pair.slice(0, eq).trim();
    const target = eq < 0 ? null : splitHostPort(pair.slice(eq + 1).trim());
    const address = target === null ? '' : target.host.replace(/^\[(.*)\]$/u, '$1');
    if (key.length === 0 || target === null || isIP(address) === 0) {
      problems.push(`"${pair}": expected host[:port]=address:port`);
      continue;
    }
    out.set(key, { address, port: target.port });
  }
  if (problems.length > 0) throw new EgressError('ERR_EGRESS_HOST_MAP', `invalid EGRESS_HOST_MAP: ${problems.join('; ')}`);
  return out;
}
