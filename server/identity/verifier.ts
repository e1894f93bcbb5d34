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
  /** `exp` in seconds since the epoch, when the token has one. */
  expiresAt?: number;
  claims: JWTPayload;
}

export interface ExpectedClaims {
  issuer?: string[];
  audience?: string[];
}

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
        requiredClaims: ['sub'],
        ...(this.expected.issuer ? { issuer: this.expected.issuer } : {}),
        ...(this.expected.audience ? { audience: this.expected.audience } : {}),
      }));
    } catch (error) {
      throw toTokenError(error);
    }
    if (typeof claims.sub !== 'string' || claims.sub === '') {
      throw new TokenError('TOKEN_CLAIM_INVALID', 'The "sub" claim must be a non-empty string');
    }
    return { token, subject: claims.sub, ...(typeof claims.exp === 'number' ? { expiresAt: claims.exp } : {}), claims };
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
