/**
 * The policy cache in front of a PolicySource (the policy API over HTTP, or
 * the embedded folder): validates what the source returns, once per load,
 * and keeps it. Any failure yields the default (deny-all) policy with a
 * reason: execution goes on, the network stays closed.
 *
 * Failures are not cached. A cached failure would keep a user on the deny-all
 * policy after the source recovers; concurrent callers still share the one
 * failing load, and the short fetch timeout bounds what an outage costs.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { PolicyError, publicPolicyReason } from './errors.ts';
import type { PolicyErrorCode } from './errors.ts';
import { describeError, HttpPolicySource } from './http-source.ts';
import type { HttpPolicySourceOptions } from './http-source.ts';
import { enforcementOf } from './enforcement.ts';
import { policyHash } from './identity.ts';
import { lintPolicy } from './lint.ts';
import { compilePolicy } from './matcher.ts';
import type { CompiledPolicy } from './matcher.ts';
import { DEFAULT_POLICY } from './schema.ts';
import type { Policy } from './schema.ts';
import type { PolicySource } from './source.ts';

export const DEFAULT_POLICY_TTL_MS = 60_000;

/** What the response reports as `policyInfo` (DESIGN §3). */
export interface PolicyInfo {
  source: 'jwt' | 'default';
  name: 'User Policy' | 'Default Policy';
  allowedDomains?: number;
  allowedPackages?: number;
  reason?: string;
  /** SHA-256 of the effective policy's canonical JSON, secret values excluded (identity.ts). */
  hash: string;
  /** Which mode ran: `audit` lets through what the rules would block, marked wouldBlock (learn mode). */
  enforcement: 'enforce' | 'audit';
  /** The source's own version of the policy (its `version` field, or the policy API's ETag), when it sends one. */
  version?: string;
}

export interface PolicyResult {
  source: 'jwt' | 'default';
  name: 'User Policy' | 'Default Policy';
  policy: Policy;
  compiled: CompiledPolicy;
  /** What the caller sees: on a failed fetch its `reason` is stable words, never the cause. */
  info: PolicyInfo;
  /** Why the default policy is in force, when a fetch failed, in full: for the log, not for the caller. */
  reason?: string;
  /** Stable code of the failure, when a fetch failed. */
  errorCode?: PolicyErrorCode;
}

/** Milliseconds since the epoch, like Date.now. */
export interface Clock {
  now(): number;
}

/** Epoch milliseconds that never run backwards: a wall-clock step back must not stretch a cached policy's life. */
const MONOTONIC_CLOCK: Clock = { now: () => performance.timeOrigin + performance.now() };

export interface PolicyCacheOptions {
  /** Cache lifetime (`POLICY_CACHE_TTL_MS`), never past the token's `exp`. */
  ttlMs?: number;
  /** Most tokens kept at once. */
  maxEntries?: number;
  /** What lifetimes and token expiry are measured against (default: monotonic, from the epoch). */
  clock?: Clock;
}

/** A source, or the policy API's URL (and timeout) as shorthand for an HttpPolicySource. */
export type PolicyFetcherOptions = PolicyCacheOptions & ({ source: PolicySource } | HttpPolicySourceOptions);

export interface FetchPolicyOptions {
  /** The token's `exp` in seconds since the epoch; decoded from the token when omitted. */
  expiresAt?: number;
  /** The token's verified subject, for sources that store policies per subject. */
  subject?: string;
}

export interface PolicyCacheStats {
  size: number;
  hits: number;
  misses: number;
  fetches: number;
  failures: number;
}

const compiledDefault = compilePolicy(DEFAULT_POLICY);
const defaultHash = policyHash(DEFAULT_POLICY);

/**
 * The deny-all result, with the reason it is in force when there is one:
 * `reason` in full for the log, `publicReason` (default: the same) for the caller.
 */
export function defaultPolicyResult(reason?: string, errorCode?: PolicyErrorCode, publicReason: string | undefined = reason): PolicyResult {
  const info: PolicyInfo = { source: 'default', name: 'Default Policy', hash: defaultHash, enforcement: 'enforce' };
  if (publicReason !== undefined) info.reason = publicReason;
  const result: PolicyResult = { source: 'default', name: 'Default Policy', policy: DEFAULT_POLICY, compiled: compiledDefault, info };
  if (reason !== undefined) result.reason = reason;
  if (errorCode !== undefined) result.errorCode = errorCode;
  return result;
}

/** The cache key for a token: its SHA-256, so the cache never holds a usable credential. */
export function tokenCacheKey(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * Reads `exp` from a JWT payload without verifying it: verification happened
 * before the token got here, this only bounds how long its policy is cached.
 */
export function unverifiedExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (payload === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    if (typeof claims === 'object' && claims !== null && 'exp' in claims && typeof claims.exp === 'number') return claims.exp;
  } catch {
    // Not a JWT we can read: fall back to the plain TTL.
  }
  return undefined;
}

export class PolicyFetcher {
  readonly #source: PolicySource;
  readonly #ttlMs: number;
  readonly #clock: Clock;
  readonly #cache: LRUCache<string, PolicyResult>;
  readonly #inFlight = new Map<string, Promise<PolicyResult>>();
  #hits = 0;
  #misses = 0;
  #fetches = 0;
  #failures = 0;

  constructor(options: PolicyFetcherOptions) {
    this.#source = 'source' in options ? options.source : new HttpPolicySource(options);
    this.#ttlMs = options.ttlMs ?? DEFAULT_POLICY_TTL_MS;
    this.#clock = options.clock ?? MONOTONIC_CLOCK;
    // One clock for the cache's lifetimes and the token's exp (wall-clock seconds). ttlResolution 0: read
    // the clock on every look-up rather than reuse a reading for a millisecond of real time.
    this.#cache = new LRUCache({ max: options.maxEntries ?? 10_000, ttl: this.#ttlMs, ttlAutopurge: false, ttlResolution: 0, perf: this.#clock });
  }

  /** The caller's policy; the default policy (with a reason) when it cannot be had. */
  async fetchPolicy(token: string | undefined, options: FetchPolicyOptions = {}): Promise<PolicyResult> {
    if (token === undefined || token === '') return defaultPolicyResult();
    const key = tokenCacheKey(token);
    const cached = this.#cache.get(key);
    if (cached !== undefined) {
      this.#hits += 1;
      return cached;
    }
    this.#misses += 1;
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) return pending;

    const expiresAt = options.expiresAt ?? unverifiedExpiry(token);
    const fetching: Promise<PolicyResult> = this.#fetchAndCache(key, token, options.subject, expiresAt, () => this.#inFlight.get(key) === fetching);
    this.#inFlight.set(key, fetching);
    return fetching;
  }

  /** Where policies come from, for the start-up log. */
  get source(): PolicySource {
    return this.#source;
  }

  stats(): PolicyCacheStats {
    return { size: this.#cache.size, hits: this.#hits, misses: this.#misses, fetches: this.#fetches, failures: this.#failures };
  }

  /** Forgets one token's policy, or every policy. */
  clear(token?: string): void {
    if (token === undefined) {
      this.#cache.clear();
      this.#inFlight.clear();
      return;
    }
    const key = tokenCacheKey(token);
    this.#cache.delete(key);
    this.#inFlight.delete(key);
  }

  /** Cache keys (token hashes), for administrators. */
  keys(): string[] {
    return [...this.#cache.keys()];
  }

  async #fetchAndCache(
    key: string,
    token: string,
    subject: string | undefined,
    expiresAt: number | undefined,
    isCurrent: () => boolean,
  ): Promise<PolicyResult> {
    try {
      const result = await this.#fetch(token, subject);
      // A clear() during the fetch means this answer may already be stale: hand it out, don't keep it.
      if (result.source === 'jwt' && isCurrent()) {
        const ttl = expiresAt === undefined ? this.#ttlMs : Math.min(this.#ttlMs, expiresAt * 1000 - this.#clock.now());
        if (ttl > 0) this.#cache.set(key, result, { ttl });
      }
      return result;
    } finally {
      if (isCurrent()) this.#inFlight.delete(key);
    }
  }

  async #fetch(token: string, subject: string | undefined): Promise<PolicyResult> {
    this.#fetches += 1;
    try {
      const json = await this.#source.load(subject === undefined ? { token } : { token, subject });
      const linted = lintPolicy(json);
      if (!linted.ok) {
        throw new PolicyError('ERR_POLICY_INVALID', `${this.#source.name} returned an invalid policy: ${linted.problems.join('; ')}`);
      }
      const info: PolicyInfo = {
        source: 'jwt',
        name: 'User Policy',
        allowedDomains: linted.api.allowedDomains.length,
        allowedPackages: linted.api.allowedPackages?.length ?? 0,
        hash: policyHash(linted.policy),
        enforcement: enforcementOf(linted.policy),
        ...(linted.api.version === undefined ? {} : { version: linted.api.version }),
      };
      return { source: 'jwt', name: 'User Policy', policy: linted.policy, compiled: compilePolicy(linted.policy), info };
    } catch (error) {
      this.#failures += 1;
      if (error instanceof PolicyError) return defaultPolicyResult(error.message, error.code, publicPolicyReason(error));
      return defaultPolicyResult(`Policy fetch failed: ${describeError(error)}`, 'ERR_POLICY_UNREACHABLE', 'policy service unreachable');
    }
  }
}
