/**
 * Verifies a bearer token against the configured key source and nothing else,
 * and turns every way it can fail into a TokenError with a stable code
 * derived from jose's own error codes.
 */
import { errors, jwtVerify, type JWTPayload } from 'jose';
import { MAX_TOKEN_BYTES } from './bearer.ts';
import { KeySourceUnavailableError, TokenError, type TokenErrorCode } from './errors.ts';
import type { KeySource } from './key-source.ts';

/** Small: enough for clock drift between issuer and service, not enough to extend a token's life. */
export const CLOCK_TOLERANCE_SECONDS = 5;

export interface VerifiedToken {
  /** The compact token itself: the policy API is called with it. Never log it. */
  token: string;
  subject: string;
  /** `exp` in seconds since the epoch (every accepted token has one). */
  expiresAt: number;
  claims: JWTPayload;
}

export interface ExpectedClaims {
  issuer?: string[];
  audience?: string[];
  /** Longest lifetime accepted, in seconds: `exp - iat`, or `exp - now` for a token without `iat`. */
  maxTokenAgeSeconds?: number;
}

/** Default JWT_MAX_TOKEN_AGE: a day. */
export const DEFAULT_MAX_TOKEN_AGE_SECONDS = 24 * 3600;

export class TokenVerifier {
  constructor(
    readonly source: KeySource,
    private readonly expected: ExpectedClaims = {},
  ) {}

  async verify(token: string): Promise<VerifiedToken> {
    if (token.length > MAX_TOKEN_BYTES) throw new TokenError('TOKEN_TOO_LARGE', `Bearer token exceeds ${MAX_TOKEN_BYTES} bytes`);
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, this.source.key, {
        algorithms: [...this.source.algorithms],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        // Without `exp` a leaked token works forever, and its policy is cached without bound.
        requiredClaims: ['sub', 'exp'],
        ...(this.expected.issuer ? { issuer: this.expected.issuer } : {}),
        ...(this.expected.audience ? { audience: this.expected.audience } : {}),
      }));
    } catch (error) {
      throw toTokenError(error);
    }
    if (typeof claims.sub !== 'string' || claims.sub === '') {
      throw new TokenError('TOKEN_CLAIM_INVALID', 'The "sub" claim must be a non-empty string');
    }
    const expiresAt = claims.exp as number;
    this.#checkLifetime(expiresAt, claims.iat);
    return { token, subject: claims.sub, expiresAt, claims };
  }

  /**
   * A token's lifetime is measured from `iat` when it has one (what the
   * issuer granted), otherwise from now (what is left), and never from a
   * point in the future: either way a token minted to live for months is
   * refused, however young it is.
   */
  #checkLifetime(expiresAt: number, issuedAt: unknown): void {
    const maxAge = this.expected.maxTokenAgeSeconds ?? DEFAULT_MAX_TOKEN_AGE_SECONDS;
    const now = Math.floor(Date.now() / 1000);
    const from = typeof issuedAt === 'number' ? Math.min(issuedAt, now) : now;
    if (expiresAt - from > maxAge + CLOCK_TOLERANCE_SECONDS) {
      throw new TokenError('TOKEN_LIFETIME_TOO_LONG', `The token's lifetime (exp - ${typeof issuedAt === 'number' ? 'iat' : 'now'}) exceeds the ${maxAge} s this service accepts`);
    }
  }
}

const MALFORMED: [TokenErrorCode, string] = ['TOKEN_MALFORMED', 'The token is not a well-formed signed JWT'];
const UNKNOWN_KEY: [TokenErrorCode, string] = ['TOKEN_KEY_UNKNOWN', 'No trusted key matches the token'];

/** jose error code → ours, for the failures that carry no claim detail. */
const JOSE_FAILURES: Partial<Record<string, [TokenErrorCode, string]>> = {
  [errors.JOSEAlgNotAllowed.code]: ['TOKEN_ALG_NOT_ALLOWED', 'The token\'s "alg" is not allowed'],
  [errors.JWSSignatureVerificationFailed.code]: ['TOKEN_BAD_SIGNATURE', 'The token signature does not verify'],
  [errors.JWKSNoMatchingKey.code]: UNKNOWN_KEY,
  [errors.JWKSMultipleMatchingKeys.code]: UNKNOWN_KEY,
  [errors.JWSInvalid.code]: MALFORMED,
  [errors.JWTInvalid.code]: MALFORMED,
  [errors.JOSENotSupported.code]: MALFORMED,
  [errors.JWKInvalid.code]: MALFORMED,
};

/** Maps jose's failure to ours; anything that is not about the token is passed on untouched. */
function toTokenError(error: unknown): unknown {
  if (error instanceof KeySourceUnavailableError || !(error instanceof errors.JOSEError)) return error;
  const because = { cause: error };
  if (error instanceof errors.JWTExpired) return new TokenError('TOKEN_EXPIRED', 'The token has expired', 'invalid_token', because);
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf' && error.reason === 'check_failed') {
      return new TokenError('TOKEN_NOT_YET_VALID', 'The token is not valid yet (nbf)', 'invalid_token', because);
    }
    const problem = error.reason === 'missing' ? 'is missing' : error.reason === 'check_failed' ? 'has an unexpected value' : 'is invalid';
    return new TokenError('TOKEN_CLAIM_INVALID', `The "${error.claim}" claim ${problem}`, 'invalid_token', because);
  }
  const [code, message] = JOSE_FAILURES[error.code] ?? ['TOKEN_INVALID', 'The token could not be verified'];
  return new TokenError(code, message, 'invalid_token', because);
}
