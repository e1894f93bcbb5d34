/**
 * Fetches a user's policy from the policy API with their bearer token, and
 * caches it. Any failure yields the default (deny-all) policy with a reason:
 * execution goes on, the network stays closed.
 *
 * Failures are not cached. A cached failure would keep a user on the deny-all
 * policy after the API recovers; concurrent callers still share the one
 * failing fetch, and the short fetch timeout bounds what an outage costs.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { request } from 'undici';
import { PolicyError } from './errors.ts';
import type { PolicyErrorCode } from './errors.ts';
import { lintPolicy } from './lint.ts';
import { compilePolicy } from './matcher.ts';
import type { CompiledPolicy } from './matcher.ts';
import { DEFAULT_POLICY } from './schema.ts';
import type { Policy } from './schema.ts';

export const DEFAULT_POLICY_TTL_MS = 60_000;
export const DEFAULT_POLICY_FETCH_TIMEOUT_MS = 5_000;
const MAX_POLICY_BYTES = 1024 * 1024;

/** What the response reports as `policyInfo` (DESIGN §3). */
export interface PolicyInfo {
  source: 'jwt' | 'default';
  name: 'User Policy' | 'Default Policy';
  allowedDomains?: number;
  allowedPackages?: number;
  reason?: string;
}

export interface PolicyResult {
  source: 'jwt' | 'default';
  name: 'User Policy' | 'Default Policy';
  policy: Policy;
  compiled: CompiledPolicy;
  info: PolicyInfo;
  /** Why the default policy is in force, when a fetch failed. */
  reason?: string;
  /** Stable code of the failure, when a fetch failed. */
  errorCode?: PolicyErrorCode;
}

export interface PolicyFetcherOptions {
  /** The policy API endpoint (`POLICY_API_URL`). */
  url: string | URL;
  /** Cache lifetime (`POLICY_CACHE_TTL_MS`), never past the token's `exp`. */
  ttlMs?: number;
  /** Whole-request limit (`POLICY_FETCH_TIMEOUT_MS`). */
  timeoutMs?: number;
  /** Most tokens kept at once. */
  maxEntries?: number;
}

export interface FetchPolicyOptions {
  /** The token's `exp` in seconds since the epoch; decoded from the token when omitted. */
  expiresAt?: number;
}

export interface PolicyCacheStats {
  size: number;
  hits: number;
  misses: number;
  fetches: number;
  failures: number;
}

const compiledDefault = compilePolicy(DEFAULT_POLICY);

/** The deny-all result, with the reason it is in force when there is one. */
export function defaultPolicyResult(reason?: string, errorCode?: PolicyErrorCode): PolicyResult {
  const info: PolicyInfo = { source: 'default', name: 'Default Policy' };
  if (reason !== undefined) info.reason = reason;
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
  readonly #url: URL;
  readonly #ttlMs: number;
  readonly #timeoutMs: number;
  readonly #cache: LRUCache<string, PolicyResult>;
  readonly #inFlight = new Map<string, Promise<PolicyResult>>();
  #hits = 0;
  #misses = 0;
  #fetches = 0;
  #failures = 0;

  constructor(options: PolicyFetcherOptions) {
    this.#url = new URL(options.url);
    this.#ttlMs = options.ttlMs ?? DEFAULT_POLICY_TTL_MS;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_POLICY_FETCH_TIMEOUT_MS;
    this.#cache = new LRUCache({ max: options.maxEntries ?? 10_000, ttl: this.#ttlMs, ttlAutopurge: false });
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
    const fetching: Promise<PolicyResult> = this.#fetchAndCache(key, token, expiresAt, () => this.#inFlight.get(key) === fetching);
    this.#inFlight.set(key, fetching);
    return fetching;
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
    expiresAt: number | undefined,
    isCurrent: () => boolean,
  ): Promise<PolicyResult> {
    try {
      const result = await this.#fetch(token);
      // A clear() during the fetch means this answer may already be stale: hand it out, don't keep it.
      if (result.source === 'jwt' && isCurrent()) {
        const ttl = expiresAt === undefined ? this.#ttlMs : Math.min(this.#ttlMs, expiresAt * 1000 - Date.now());
        if (ttl > 0) this.#cache.set(key, result, { ttl });
      }
      return result;
    } finally {
      if (isCurrent()) this.#inFlight.delete(key);
    }
  }

  async #fetch(token: string): Promise<PolicyResult> {
    this.#fetches += 1;
    try {
      const json = await this.#requestJson(token);
      const linted = lintPolicy(json);
      if (!linted.ok) {
        throw new PolicyError('ERR_POLICY_INVALID', `Policy API returned an invalid policy: ${linted.problems.join('; ')}`);
      }
      const info: PolicyInfo = {
        source: 'jwt',
        name: 'User Policy',
        allowedDomains: linted.api.allowedDomains.length,
        allowedPackages: linted.api.allowedPackages?.length ?? 0,
      };
      return { source: 'jwt', name: 'User Policy', policy: linted.policy, compiled: compilePolicy(linted.policy), info };
    } catch (error) {
      this.#failures += 1;
      if (error instanceof PolicyError) return defaultPolicyResult(error.message, error.code);
      return defaultPolicyResult(`Policy fetch failed: ${describe(error)}`, 'ERR_POLICY_UNREACHABLE');
    }
  }

  async #requestJson(token: string): Promise<unknown> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let response: Awaited<ReturnType<typeof request>>;
    try {
      response = await request(this.#url, {
        method: 'GET',
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        signal,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      });
    } catch (error) {
      throw this.#transportError(error, signal);
    }
    const { statusCode, body } = response;
    if (statusCode < 200 || statusCode > 299) {
      await body.dump();
      throw new PolicyError('ERR_POLICY_HTTP_STATUS', `Policy API answered HTTP ${statusCode}`);
    }
    let text = '';
    try {
      for await (const chunk of body) {
        text += (chunk as Buffer).toString('utf8');
        if (text.length > MAX_POLICY_BYTES) {
          body.destroy();
          throw new PolicyError('ERR_POLICY_BAD_JSON', `Policy API response is larger than ${MAX_POLICY_BYTES} bytes`);
        }
      }
    } catch (error) {
      if (error instanceof PolicyError) throw error;
      throw this.#transportError(error, signal);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new PolicyError('ERR_POLICY_BAD_JSON', `Policy API returned invalid JSON: ${describe(error)}`);
    }
  }

  #transportError(error: unknown, signal: AbortSignal): PolicyError {
    const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
    if (signal.aborted || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new PolicyError('ERR_POLICY_TIMEOUT', `Policy API did not answer within ${this.#timeoutMs} ms`, { cause: error });
    }
    return new PolicyError('ERR_POLICY_UNREACHABLE', `Policy API unreachable: ${describe(error)}`, { cause: error });
  }
}

function describe(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describe(error.errors[0]);
  return error instanceof Error ? error.message : String(error);
}
