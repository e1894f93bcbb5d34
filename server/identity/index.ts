/**
 * The front door of server/identity: who is calling, proven by a bearer JWT
 * verified locally before anything else happens to the request.
 */
import { ConfigError, type Config } from '../config.ts';
import { bearerToken } from './bearer.ts';
import { loadKeySource } from './key-source.ts';
import { TokenError } from './errors.ts';
import type { Identity } from './identity.ts';
import { TokenVerifier, type VerifiedToken } from './verifier.ts';

export { bearerToken, MAX_TOKEN_BYTES } from './bearer.ts';
export { ANONYMOUS_CALLER, resolveCaller, type Caller, type CallerLog, type PolicyLookup } from './caller.ts';
export { DEV_KEY_ALGORITHM, DEV_KEY_FILE, mintDemoToken, type DemoTokenOptions, type DevelopmentKeys } from './dev-keys.ts';
export { demoBanner, type DemoBannerOptions } from './demo-banner.ts';
export { DEMO_SUBJECT, developmentAnnouncement } from './development.ts';
export { bearerChallenge, KeySourceUnavailableError, TokenError, type TokenErrorCode } from './errors.ts';
export { developmentJwksRouter, JWKS_PATH } from './jwks-route.ts';
export { loadKeySource, MIN_SECRET_BYTES, NO_KEY_IN_PRODUCTION, type KeySource } from './key-source.ts';
export { CLOCK_TOLERANCE_SECONDS, DEFAULT_MAX_TOKEN_AGE_SECONDS, TokenVerifier, type VerifiedToken } from './verifier.ts';
export type { Identity } from './identity.ts';

const list = (value: string | undefined): string[] | undefined => {
  const items = value?.split(',').map((item) => item.trim()).filter((item) => item !== '');
  return items === undefined || items.length === 0 ? undefined : items;
};

type ClaimSettings = Pick<Config, 'NODE_ENV' | 'JWT_AUDIENCE' | 'JWT_ISSUER' | 'JWT_JWKS_URL'>;

/**
 * In production a token must be meant for this service: without an expected
 * audience, a token another client of a shared identity provider was given
 * works here too; with a JWKS URL (usually such a provider), the issuer too.
 */
export function productionClaimProblems(config: ClaimSettings): string[] {
  if (config.NODE_ENV !== 'production') return [];
  const problems: string[] = [];
  if (config.JWT_AUDIENCE === undefined) problems.push('JWT_AUDIENCE: required with NODE_ENV=production (the `aud` this service\'s tokens carry)');
  if (config.JWT_JWKS_URL !== undefined && config.JWT_ISSUER === undefined) {
    problems.push('JWT_ISSUER: required with NODE_ENV=production and JWT_JWKS_URL (the `iss` of the identity provider)');
  }
  return problems;
}

/** Loads the key source (throwing ConfigError, with every problem, when it is unusable) and builds the verifier. */
export async function loadIdentity(config: Config): Promise<Identity> {
  const claimProblems = productionClaimProblems(config);
  const source = await loadKeySource(config).catch((error: unknown) => {
    throw error instanceof ConfigError && claimProblems.length > 0 ? new ConfigError([...error.problems, ...claimProblems]) : error;
  });
  if (claimProblems.length > 0) throw new ConfigError(claimProblems);
  const issuer = list(config.JWT_ISSUER);
  const audience = list(config.JWT_AUDIENCE);
  const verifier = new TokenVerifier(source, {
    ...(issuer ? { issuer } : {}),
    ...(audience ? { audience } : {}),
    maxTokenAgeSeconds: config.JWT_MAX_TOKEN_AGE,
  });
  const authenticate = async (authorization: string | undefined): Promise<VerifiedToken | null> => {
    const token = bearerToken(authorization);
    return token === null ? null : verifier.verify(token);
  };
  return {
    verifier,
    ...(source.development ? { development: source.development } : {}),
    ...(issuer?.[0] !== undefined ? { issuer: issuer[0] } : {}),
    ...(audience ? { audience } : {}),
    authenticate,
    requireToken: async (authorization) => {
      const verified = await authenticate(authorization);
      if (verified === null) throw new TokenError('TOKEN_MISSING', 'A bearer token is required', null);
      return verified;
    },
  };
}
