/**
 * The embedded policy service: `GET /api/user/policies` answers the caller's
 * policy from `POLICY_DIR/<encodeURIComponent(sub)>.json`, in the policy API
 * format, so the whole system runs on one machine with no external API. It
 * is the default POLICY_API_URL; the fetcher calls it over HTTP exactly as it
 * would call a remote one, with the caller's bearer token.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Router } from 'express';
import { lintPolicy, PolicyFetcher, type FetchPolicyOptions, type PolicyCacheStats, type PolicyResult } from '../policies/index.ts';
import type { Config } from './config.ts';
import { ApiError } from './errors.ts';
import type { Identity } from './identity/index.ts';

/** The seed's policy API path, kept so an external policy API and this one are interchangeable. */
export const POLICY_API_PATH = '/api/user/policies';

export interface PolicyServiceOptions {
  directory: string;
  requireToken: Identity['requireToken'];
}

/** The file holding a subject's policy; encoding keeps every subject inside the directory. */
export function policyFileFor(directory: string, subject: string): string {
  return join(directory, `${encodeURIComponent(subject)}.json`);
}

const NOT_FOUND_CODES = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG', 'EISDIR']);

export function policyServiceRouter({ directory, requireToken }: PolicyServiceOptions): Router {
  const router = Router();
  router.get(POLICY_API_PATH, async (req, res) => {
    const { subject } = await requireToken(req.get('authorization'));
    let text: string;
    try {
      text = await readFile(policyFileFor(directory, subject), 'utf8');
    } catch (error) {
      // 404 lets the fetcher fall back to the default policy with a reason that says why.
      if (NOT_FOUND_CODES.has((error as NodeJS.ErrnoException).code ?? '')) {
        throw new ApiError(404, 'POLICY_NOT_FOUND', `No policy for subject ${JSON.stringify(subject)}`);
      }
      throw error;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      req.log?.error({ subject, err: (error as Error).message }, 'policy file is not JSON');
      throw new ApiError(500, 'POLICY_FILE_INVALID', 'The stored policy is invalid');
    }
    // Checked here too, so the operator finds the broken file named in this log, not only a fetch failure.
    const linted = lintPolicy(json);
    if (!linted.ok) {
      req.log?.error({ subject, problems: linted.problems }, 'policy file does not validate');
      throw new ApiError(500, 'POLICY_FILE_INVALID', 'The stored policy is invalid');
    }
    res.set('Cache-Control', 'no-store').json(json);
  });
  return router;
}

/** What the caller resolver and the administrator endpoints use of the fetcher. */
export interface PolicyCache {
  fetchPolicy(token: string, options?: FetchPolicyOptions): Promise<PolicyResult>;
  stats(): PolicyCacheStats;
  clear(token?: string): void;
}

/**
 * The policy fetcher, made on first use. The default POLICY_API_URL is this
 * service's own policy route, and the service knows its URL only once it
 * listens (PORT=0 picks the port then); requests, and so first uses, come
 * after that.
 */
export class LazyPolicyFetcher implements PolicyCache {
  #fetcher: PolicyFetcher | undefined;
  #serviceUrl: string | undefined;

  constructor(private readonly config: Pick<Config, 'POLICY_API_URL' | 'POLICY_CACHE_TTL_MS' | 'POLICY_FETCH_TIMEOUT_MS'>) {}

  /** Records where the service listens: the default policy API lives there. */
  listening(serviceUrl: string): void {
    this.#serviceUrl = serviceUrl;
  }

  get url(): string {
    if (this.config.POLICY_API_URL !== undefined) return this.config.POLICY_API_URL;
    if (this.#serviceUrl === undefined) throw new Error('The policy API URL is not known before the service listens');
    return `${this.#serviceUrl}${POLICY_API_PATH}`;
  }

  get fetcher(): PolicyFetcher {
    this.#fetcher ??= new PolicyFetcher({
      url: this.url,
      ttlMs: this.config.POLICY_CACHE_TTL_MS,
      timeoutMs: this.config.POLICY_FETCH_TIMEOUT_MS,
    });
    return this.#fetcher;
  }

  fetchPolicy(token: string, options?: FetchPolicyOptions): Promise<PolicyResult> {
    return this.fetcher.fetchPolicy(token, options);
  }

  stats(): PolicyCacheStats {
    return this.fetcher.stats();
  }

  clear(token?: string): void {
    this.fetcher.clear(token);
  }
}
