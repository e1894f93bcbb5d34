/**
 * Where the server's policies come from, and the embedded policy service.
 *
 * With POLICY_API_URL set, the policy cache loads from that API over HTTP.
 * Without it (the default), the server reads POLICY_DIR itself through the
 * same PolicySource interface, with the subject of the token it has already
 * verified: no HTTP request to itself, one verification per request.
 *
 * `GET /api/user/policies` answers the caller's policy from the same folder,
 * in the policy API format, for other consumers (another instance's
 * POLICY_API_URL, an operator checking a file).
 */
import { Router } from 'express';
import {
  DirectoryPolicySource,
  HttpPolicySource,
  lintPolicy,
  PolicyError,
  PolicyFetcher,
  redactSecretValues,
  type HttpRequest,
  type PolicySource,
} from '../policies/index.ts';
import type { Config } from './config.ts';
import { ApiError } from './errors.ts';
import type { Identity } from './identity/index.ts';

/** The seed's policy API path, kept so an external policy API and this one are interchangeable. */
export const POLICY_API_PATH = '/api/user/policies';

type PolicyConfig = Pick<Config, 'POLICY_API_URL' | 'POLICY_DIR' | 'POLICY_CACHE_TTL_MS' | 'POLICY_FETCH_TIMEOUT_MS'>;

export interface PolicySourceDependencies {
  /** The HTTP client for a remote policy API (default: undici's `request`). */
  request?: HttpRequest;
}

/** The policy API when POLICY_API_URL is set; otherwise POLICY_DIR, read directly. */
export function policySourceFor(config: PolicyConfig, deps: PolicySourceDependencies = {}): PolicySource {
  if (config.POLICY_API_URL === undefined) return new DirectoryPolicySource({ directory: config.POLICY_DIR });
  return new HttpPolicySource({
    url: config.POLICY_API_URL,
    timeoutMs: config.POLICY_FETCH_TIMEOUT_MS,
    ...(deps.request === undefined ? {} : { request: deps.request }),
  });
}

/** The policy cache the caller resolver and the administrator endpoints use. */
export function createPolicyCache(config: PolicyConfig, deps: PolicySourceDependencies = {}): PolicyFetcher {
  return new PolicyFetcher({ source: policySourceFor(config, deps), ttlMs: config.POLICY_CACHE_TTL_MS });
}

export interface PolicyServiceOptions {
  directory: string;
  requireToken: Identity['requireToken'];
}

export function policyServiceRouter({ directory, requireToken }: PolicyServiceOptions): Router {
  const folder = new DirectoryPolicySource({ directory });
  const router = Router();
  router.get(POLICY_API_PATH, async (req, res) => {
    const { subject, token } = await requireToken(req.get('authorization'));
    let json: unknown;
    try {
      json = await folder.load({ token, subject });
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      // 404 lets a fetcher elsewhere fall back to the default policy with a reason that says why.
      if (error.code === 'ERR_POLICY_NOT_FOUND') throw new ApiError(404, 'POLICY_NOT_FOUND', error.message);
      if (error.code !== 'ERR_POLICY_BAD_JSON') throw error;
      req.log?.error({ subject, err: error.message }, 'policy file is not JSON');
      throw new ApiError(500, 'POLICY_FILE_INVALID', 'The stored policy is invalid');
    }
    // Checked here too, so the operator finds the broken file named in this log, not only a fetch failure.
    const linted = lintPolicy(json);
    if (!linted.ok) {
      req.log?.error({ subject, problems: linted.problems }, 'policy file does not validate');
      throw new ApiError(500, 'POLICY_FILE_INVALID', 'The stored policy is invalid');
    }
    // A value the policy holds is for the proxy alone: whoever reads the policy learns only that there is one.
    res.set('Cache-Control', 'no-store').json(redactSecretValues(json as { secrets?: Record<string, { value?: string }> }));
  });
  return router;
}

/** What the caller resolver and the administrator endpoints use of the cache. */
export type PolicyCache = Pick<PolicyFetcher, 'fetchPolicy' | 'stats' | 'clear'>;
