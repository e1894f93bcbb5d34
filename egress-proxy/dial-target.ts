/**
 * Turns an allowed destination into the one address the proxy will dial
 * (DESIGN §6): the operator's host map first (the only road to loopback and
 * private networks), else the IP literal itself, else DNS. Every candidate
 * address is checked by the address guard, and the connection goes to
 * exactly the address checked: nothing downstream looks the name up again.
 *
 * Resolution happens only after the policy allowed the request, so a blocked
 * host never even leaks to DNS (no exfiltration through lookups of
 * `secret.attacker.example`).
 */
import { promises as dns } from 'node:dns';
import { BASE_ADDRESS_GUARD, dialAddress } from './address-guard.ts';
import type { AddressGuard } from './address-guard.ts';
import { ipLiteralOf } from './canonical-host.ts';
import { refusal } from './errors.ts';
import type { Refusal } from './errors.ts';
import type { HostMap } from './host-map.ts';
import type { Destination } from './http-checks.ts';

export interface DialTarget {
  /** The checked address; a host name only when an upstream proxy resolves it (see dialTargetViaProxy). */
  address: string;
  /** 0 for a name left to the upstream proxy. */
  family: 0 | 4 | 6;
  port: number;
  /** True when the operator's host map chose the address. */
  mapped: boolean;
}

export type DialResult = { target: DialTarget } | { refusal: Refusal } | { unreachable: string };

export type LookupFn = (host: string) => Promise<ReadonlyArray<{ address: string }>>;

const systemLookup: LookupFn = (host) => dns.lookup(host, { all: true, verbatim: true });

const LOOKUP_TIMEOUT_MS = 5000;

export type Guard = Pick<AddressGuard, 'reasonFor'>;

export async function dialTargetFor(dest: Destination, hostMap: HostMap, guard: Guard = BASE_ADDRESS_GUARD, lookup: LookupFn = systemLookup): Promise<DialResult> {
  const mapped = hostMap.lookup(dest.host, dest.port);
  if (mapped !== undefined) {
    const { address, family } = dialAddress(mapped.address);
    return { target: { address, family, port: mapped.port, mapped: true } };
  }

  const literal = ipLiteralOf(dest.host);
  let candidates: string[];
  if (literal !== null) {
    candidates = [literal];
  } else {
    try {
      candidates = (await withTimeout(lookup(dest.host), LOOKUP_TIMEOUT_MS)).map((a) => a.address);
    } catch (err) {
      const code = typeof err === 'object' && err !== null && 'code' in err ? String((err).code) : 'lookup failed';
      return { unreachable: `Cannot resolve ${dest.host}: ${code}` };
    }
    if (candidates.length === 0) return { unreachable: `Cannot resolve ${dest.host}: no addresses` };
  }

  // Every address must pass, not just the one dialled: a name that also
  // resolves to 127.0.0.1 is a rebinding attempt, not a choice to make.
  for (const address of candidates) {
    const why = guard.reasonFor(address);
    if (why !== null) return { refusal: refusal(403, 'destination-address', `Destination ${dest.host} resolves to a forbidden address: ${why}`) };
  }
  const first = candidates[0] ?? '';
  const { address, family } = dialAddress(first);
  return { target: { address, family, port: dest.port, mapped: false } };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error('lookup timed out'), { code: 'ETIMEOUT' })), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * With an upstream proxy (EGRESS_UPSTREAM_PROXY) a name is not resolved
 * here: the upstream proxy resolves it from its own network, where our
 * resolver's answer means nothing (and behind a corporate proxy there often
 * is none). Mapped hosts are dialled directly as ever, and IP literals are
 * still checked by the address guard, so the sandbox cannot name our
 * loopback or the metadata address even through the operator's proxy. What
 * a name reaches from the upstream proxy is that proxy's policy.
 */
export async function dialTargetViaProxy(dest: Destination, hostMap: HostMap, guard: Guard = BASE_ADDRESS_GUARD): Promise<DialResult> {
  if (hostMap.lookup(dest.host, dest.port) !== undefined || ipLiteralOf(dest.host) !== null) return dialTargetFor(dest, hostMap, guard);
  return { target: { address: dest.host, family: 0, port: dest.port, mapped: false } };
}
