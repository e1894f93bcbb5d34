/**
 * Why a request's credentials were refused. Each failure has a stable `code`
 * that clients and tests branch on; the message is for people. errors.ts turns
 * these into 401 answers with an RFC 6750 `WWW-Authenticate` challenge.
 */

export type TokenErrorCode =
  | 'TOKEN_MISSING'
  | 'AUTH_HEADER_MALFORMED'
  | 'TOKEN_TOO_LARGE'
  | 'TOKEN_MALFORMED'
  | 'TOKEN_ALG_NOT_ALLOWED'
  | 'TOKEN_BAD_SIGNATURE'
  | 'TOKEN_KEY_UNKNOWN'
  | 'TOKEN_EXPIRED'
  | 'TOKEN_NOT_YET_VALID'
  | 'TOKEN_CLAIM_INVALID'
  | 'TOKEN_LIFETIME_TOO_LONG'
  | 'TOKEN_INVALID';

/** The RFC 6750 `error` attribute: none when no credentials were sent at all. */
export type BearerChallengeError = 'invalid_token' | 'invalid_request' | null;

export class TokenError extends Error {
  constructor(
    readonly code: TokenErrorCode,
    message: string,
    readonly challenge: BearerChallengeError = 'invalid_token',
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TokenError';
  }
}

/**
 * The configured key source could not be consulted (JWKS endpoint down, slow
 * or answering garbage). That is the service's problem, not the caller's, so
 * it is not reported as a bad token.
 */
export class KeySourceUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeySourceUnavailableError';
  }
}

/** `Bearer error="…", error_description="…"`, with the description made safe for a quoted-string. */
export function bearerChallenge(error: TokenError): string {
  if (error.challenge === null) return 'Bearer';
  const description = error.message.replace(/[^\x20-\x7e]|["\\]/g, "'").slice(0, 200);
  return `Bearer error="${error.challenge}", error_description="${description}"`;
}
