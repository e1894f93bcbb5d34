/**
 * Which IP addresses a sandbox may reach. Checked on IP literals from the
 * client (Node's lookup hooks never see those) and on every address DNS
 * returns, before connecting to exactly that address.
 *
 * IPv4 is a deny-list of special-purpose ranges (RFC 6890 and successors).
 * IPv6 is an allow-list: only global unicast (2000::/3) minus its special
 * blocks. IPv4-mapped addresses are judged as the IPv4 address they carry,
 * so `::ffff:127.0.0.1` is loopback however it is written.
 */
import { BlockList, isIP } from 'node:net';
import os from 'node:os';

const V4_DENIED: ReadonlyArray<readonly [string, number, string]> = [
  ['0.0.0.0', 8, 'unspecified'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade NAT'],
  ['127.0.0.0', 8, 'loopback'],
  ['168.63.129.16', 32, 'the cloud platform\'s host service (Azure wire server)'],
  ['169.254.0.0', 16, 'link-local (cloud metadata)'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4 relay anycast'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

const V6_DENIED_INSIDE_GLOBAL: ReadonlyArray<readonly [string, number, string]> = [
  ['2001::', 23, 'IETF protocol assignments (Teredo, ORCHID, benchmarking)'],
  ['2001:db8::', 32, 'documentation'],
  ['2002::', 16, '6to4 (embeds an IPv4 address)'],
  ['3fff::', 20, 'documentation'],
];

/** Named ranges outside 2000::/3, only so the refusal says what was hit. */
const V6_NAMED: ReadonlyArray<readonly [string, number, string]> = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['64:ff9b::', 96, 'NAT64'],
  ['64:ff9b:1::', 48, 'NAT64 local-use'],
  ['100::', 64, 'discard-only'],
  ['fc00::', 7, 'unique-local'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local (deprecated)'],
  ['ff00::', 8, 'multicast'],
  ['::', 96, 'IPv4-compatible (deprecated)'],
];

interface RangeSet {
  list: BlockList;
  ranges: ReadonlyArray<{ list: BlockList; label: string }>;
}

function rangeSet(family: 'ipv4' | 'ipv6', entries: ReadonlyArray<readonly [string, number, string]>): RangeSet {
  const list = new BlockList();
  const ranges = entries.map(([net, prefix, label]) => {
    list.addSubnet(net, prefix, family);
    const one = new BlockList();
    one.addSubnet(net, prefix, family);
    return { list: one, label };
  });
  return { list, ranges };
}

const v4Denied = rangeSet('ipv4', V4_DENIED);
const v6DeniedInGlobal = rangeSet('ipv6', V6_DENIED_INSIDE_GLOBAL);
const v6Named = rangeSet('ipv6', V6_NAMED);
const v6Global = new BlockList();
v6Global.addSubnet('2000::', 3, 'ipv6');

function labelOf(set: RangeSet, address: string, family: 'ipv4' | 'ipv6'): string | undefined {
  return set.ranges.find((r) => r.list.check(address, family))?.label;
}

/** Parses an IPv6 address (no brackets, no zone) into 16 bytes; null if malformed. */
export function parseIPv6(address: string): Uint8Array | null {
  if (isIP(address) !== 6) return null;
  let text = address;
  const bytes = new Uint8Array(16);
  // A trailing dotted quad (`::ffff:1.2.3.4`) becomes two hextets.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const quad = tail.split('.').map(Number);
    const [a = 0, b = 0, c = 0, d = 0] = quad;
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [headText = '', tailText] = text.split('::');
  const head = headText === '' ? [] : headText.split(':');
  const rest = tailText === undefined || tailText === '' ? [] : tailText.split(':');
  const hextets = tailText === undefined ? head : [...head, ...Array<string>(8 - head.length - rest.length).fill('0'), ...rest];
  if (hextets.length !== 8) return null;
  hextets.forEach((h, i) => {
    const v = parseInt(h, 16);
    bytes[i * 2] = v >> 8;
    bytes[i * 2 + 1] = v & 0xff;
  });
  return bytes;
}

/** The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else null. */
export function mappedIPv4(address: string): string | null {
  const b = parseIPv6(address);
  if (b === null) return null;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return null;
  if (b[10] !== 0xff || b[11] !== 0xff) return null;
  return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
}

/**
 * Why `address` must not be reached, or null when it is a public address.
 * Anything that is not a valid IP address is refused too.
 */
export function forbiddenAddressReason(address: string): string | null {
  const family = isIP(address);
  if (family === 4) {
    const label = labelOf(v4Denied, address, 'ipv4');
    return label === undefined ? null : `${address} is ${label}`;
  }
  if (family === 6) {
    const v4 = mappedIPv4(address);
    if (v4 !== null) {
      const inner = forbiddenAddressReason(v4);
      return inner === null ? null : `${address} is IPv4-mapped: ${inner}`;
    }
    if (!v6Global.check(address, 'ipv6')) {
      return `${address} is ${labelOf(v6Named, address, 'ipv6') ?? 'not global unicast'}`;
    }
    const label = labelOf(v6DeniedInGlobal, address, 'ipv6');
    return label === undefined ? null : `${address} is ${label}`;
  }
  return `${address} is not an IP address`;
}

/** The address to hand to `net.connect`: IPv4-mapped addresses are dialled as the IPv4 they carry. */
export function dialAddress(address: string): { address: string; family: 4 | 6 } {
  const v4 = isIP(address) === 6 ? mappedIPv4(address) : null;
  if (v4 !== null) return { address: v4, family: 4 };
  return { address, family: isIP(address) === 6 ? 6 : 4 };
}

/**
 * The base deny-list plus what only this deployment knows: the addresses of
 * the machine the proxy runs on (a service bound to 0.0.0.0 there answers on
 * the machine's public address too) and the operator's own ranges
 * (EGRESS_DENY_CIDRS). The operator's host map is consulted before the
 * guard, so a host mapped explicitly still reaches its address.
 */
export class AddressGuard {
  readonly #own: ReadonlySet<string>;
  readonly #operator: ReadonlyArray<{ list: BlockList; cidr: string }>;

  /** `hostAddresses` defaults to every address of `os.networkInterfaces()`; `denyCidrs` as parseCidrs returns them. */
  constructor(options: { denyCidrs?: readonly Cidr[]; hostAddresses?: readonly string[] } = {}) {
    const own = options.hostAddresses ?? interfaceAddresses();
    this.#own = new Set(own.map(normaliseAddress).filter((a): a is string => a !== null));
    this.#operator = (options.denyCidrs ?? []).map((c) => {
      const list = new BlockList();
      list.addSubnet(c.network, c.prefix, c.family);
      return { list, cidr: `${c.network}/${c.prefix}` };
    });
  }

  /** Why `address` must not be reached, or null. */
  reasonFor(address: string): string | null {
    const base = forbiddenAddressReason(address);
    if (base !== null) return base;
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    const v4 = family === 'ipv6' ? mappedIPv4(address) : null;
    const judged = v4 ?? address;
    const judgedFamily = v4 === null ? family : 'ipv4';
    if (this.#own.has(normaliseAddress(judged) ?? judged)) return `${address} is an address of the proxy's own host`;
    const hit = this.#operator.find((r) => r.list.check(judged, judgedFamily));
    return hit === undefined ? null : `${address} is in the operator's denied range ${hit.cidr}`;
  }
}

/** Only the built-in ranges: for callers that have no deployment at hand. */
export const BASE_ADDRESS_GUARD: Pick<AddressGuard, 'reasonFor'> = { reasonFor: forbiddenAddressReason };

function interfaceAddresses(): string[] {
  return Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address.replace(/%.*$/u, '')));
}

/** One spelling per address, so `::ffff:1.2.3.4`, `0:0::ffff:102:304` and `1.2.3.4` compare equal. */
function normaliseAddress(address: string): string | null {
  const family = isIP(address);
  if (family === 4) return address;
  if (family !== 6) return null;
  const v4 = mappedIPv4(address);
  if (v4 !== null) return v4;
  const bytes = parseIPv6(address);
  return bytes === null ? null : Buffer.from(bytes).toString('hex');
}

export interface Cidr {
  network: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses `a.b.c.d/n` or `x::/n` (a bare address is a /32 or /128); a problem string when it is not one. */
export function parseCidr(text: string): Cidr | string {
  const [network = '', prefixText, ...rest] = text.trim().split('/');
  const family = isIP(network);
  if (family === 0 || rest.length > 0) return `"${text}" is not an IP address or CIDR range`;
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!/^\d{1,3}$/u.test(prefixText ?? String(max)) || prefix > max) return `"${text}" has a prefix length outside 0-${max}`;
  return { network, prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}
