/**
 * Reads the bearer token out of an `Authorization` header (RFC 6750 §2.1).
 * The size limit is checked before anything else looks at the value, so an
 * oversized header costs a length comparison and nothing more.
 */
import { TokenError } from './errors.ts';

/** Larger than any token a real issuer mints; a bigger one is refused unparsed. */
export const MAX_TOKEN_BYTES = 8 * 1024;

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** The token, or null when the request carries no credentials at all. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined || header === '') return null;
  if (header.length > MAX_TOKEN_BYTES + 'Bearer '.length + 16) {
    throw new TokenError('TOKEN_TOO_LARGE', `Bearer token exceeds ${MAX_TOKEN_BYTES} bytes`);
  }
  const match = BEARER.exec(header);
  if (match === null) {
    throw new TokenError('AUTH_HEADER_MALFORMED', 'Authorization header must be "Bearer <token>"', 'invalid_request');
  }
  const token = match[1] ?? '';
  if (token.length > MAX_TOKEN_BYTES) {
    throw new TokenError('TOKEN_TOO_LARGE', `Bearer token exceeds ${MAX_TOKEN_BYTES} bytes`);
  }
  return token;
}
