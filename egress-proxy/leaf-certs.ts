/**
 * Leaf certificates for intercepted hosts, issued on demand by the
 * deployment CA and cached as ready TLS contexts, so a kept-alive client pays
 * for issuance once per host, not per tunnel.
 *
 * All leaves share one P-256 key made at start-up: the key never leaves this
 * process, and it saves a key generation plus a PEM import per host. Each leaf
 * still names exactly one host (SAN = DNS name or IP), lives a week and is
 * re-issued from the cache before it expires.
 */
import tls from 'node:tls';
import { LRUCache } from 'lru-cache';
import type { CertificateAuthority } from './ca.ts';
import { ipLiteralOf } from './canonical-host.ts';
import { ECDSA_P256, ECDSA_SHA256, randomSerial, subtle, x509 } from './x509-provider.ts';
import type { CryptoKeyPair } from './x509-provider.ts';

const LEAF_LIFETIME_MS = 7 * 24 * 3600_000;
/** Re-issue well before expiry so a long-running client never sees an expired leaf. */
const CACHE_TTL_MS = 24 * 3600_000;

/**
 * How many uncached leaves may be issued: issuance costs milliseconds of
 * CPU on the loop every session shares, and a 60-byte CONNECT asks for one.
 */
export interface LeafLimits {
  /** Per session, over its lifetime (default 64). */
  perSession: number;
  /** Across the proxy, per second (default 50; a bucket of that size refilled continuously). */
  perSecond: number;
  /**
   * Per session, for hosts the policy refuses outright (default 4): those
   * are intercepted only so the program can read the 403; beyond this the
   * CONNECT itself is answered 403, with no TLS and no leaf.
   */
  refusedHostsPerSession: number;
}

export const DEFAULT_LEAF_LIMITS: LeafLimits = { perSession: 64, perSecond: 50, refusedHostsPerSession: 4 };

export type LeafGrant = { context: Promise<tls.SecureContext> } | { limited: 'session' | 'proxy'; retryAfterS: number };

interface SessionIssuance {
  all: number;
  refused: number;
}

export class LeafCertIssuer {
  readonly #ca: CertificateAuthority;
  readonly #keys: Promise<{ pair: CryptoKeyPair; pem: string; aki: x509.Extension }>;
  readonly #cache: LRUCache<string, Promise<tls.SecureContext>>;
  readonly #limits: LeafLimits;
  readonly #now: () => number;
  readonly #bySession = new WeakMap<object, SessionIssuance>();
  #tokens: number;
  #refilledAt: number;
  #issued = 0;

  constructor(ca: CertificateAuthority, options: { maxHosts?: number; limits?: Partial<LeafLimits>; now?: () => number } = {}) {
    this.#ca = ca;
    this.#limits = { ...DEFAULT_LEAF_LIMITS, ...options.limits };
    this.#now = options.now ?? (() => performance.now());
    this.#tokens = this.#limits.perSecond;
    this.#refilledAt = this.#now();
    const maxHosts = options.maxHosts ?? 1000;
    this.#keys = (async () => {
      const pair = (await subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']));
      const pkcs8 = await subtle.exportKey('pkcs8', pair.privateKey);
      const aki = await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey);
      return { pair, pem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), aki };
    })();
    this.#cache = new LRUCache({ max: maxHosts, ttl: CACHE_TTL_MS });
  }

  /** Leaves issued so far (cache hits excluded). */
  get issued(): number {
    return this.#issued;
  }

  /**
   * A leaf for `canonicalHost` on behalf of `session` (any object that lives
   * as long as the session): from the cache, or newly issued when the
   * session's and the proxy's limits allow, else which limit was hit.
   * `refused` marks a host the policy refuses outright.
   */
  acquire(canonicalHost: string, session: object, refused: boolean): LeafGrant {
    const cached = this.#cache.get(canonicalHost);
    if (cached !== undefined) return { context: cached };
    const counts = this.#bySession.get(session) ?? { all: 0, refused: 0 };
    if (counts.all >= this.#limits.perSession || (refused && counts.refused >= this.#limits.refusedHostsPerSession)) {
      return { limited: 'session', retryAfterS: 60 };
    }
    this.#refill();
    if (this.#tokens < 1) return { limited: 'proxy', retryAfterS: Math.max(1, Math.ceil((1 - this.#tokens) / this.#limits.perSecond)) };
    this.#tokens -= 1;
    counts.all += 1;
    if (refused) counts.refused += 1;
    this.#bySession.set(session, counts);
    return { context: this.contextFor(canonicalHost) };
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#limits.perSecond, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#limits.perSecond);
    this.#refilledAt = now;
  }

  /** A TLS context presenting a leaf for `canonicalHost` (a DNS name or an IP literal, IPv6 bracketed), whatever the limits. */
  contextFor(canonicalHost: string): Promise<tls.SecureContext> {
    const cached = this.#cache.get(canonicalHost);
    if (cached !== undefined) return cached;
    // Cache the promise, so concurrent tunnels to a new host share one issuance.
    const pending = this.#issue(canonicalHost);
    this.#cache.set(canonicalHost, pending);
    pending.catch(() => this.#cache.delete(canonicalHost));
    return pending;
  }

  async #issue(canonicalHost: string): Promise<tls.SecureContext> {
    this.#issued += 1;
    const keys = await this.#keys;
    const ip = ipLiteralOf(canonicalHost);
    const now = Date.now();
    const notAfter = Math.min(now + LEAF_LIFETIME_MS, this.#ca.cert.notAfter.getTime());
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      // CN is capped at 64 characters by X.520; SAN is what clients check anyway.
      subject: canonicalHost.length <= 64 ? [{ CN: [canonicalHost] }] : [{ O: ['Sandbox Egress Proxy'] }],
      issuer: this.#ca.cert.subjectName,
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(notAfter),
      signingAlgorithm: ECDSA_SHA256,
      publicKey: keys.pair.publicKey,
      signingKey: this.#ca.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([ip === null ? { type: 'dns', value: canonicalHost } : { type: 'ip', value: ip }]),
        await x509.SubjectKeyIdentifierExtension.create(keys.pair.publicKey),
        keys.aki,
      ],
    });
    return tls.createSecureContext({ key: keys.pem, cert: cert.toString('pem'), minVersion: 'TLSv1.2' });
  }
}
