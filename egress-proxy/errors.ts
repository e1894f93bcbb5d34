/**
 * One error type for the egress proxy. Each failure has a stable `code` that
 * tests and callers match on (never the message) and, where it ends an HTTP
 * exchange, the status the client gets.
 */

export type EgressErrorCode =
  | 'ERR_EGRESS_CA'
  | 'ERR_EGRESS_HOST_MAP'
  | 'ERR_EGRESS_SOCKET_PATH'
  | 'ERR_EGRESS_SESSION_EXISTS'
  | 'ERR_EGRESS_CLOSED'
  | 'ERR_EGRESS_UPSTREAM_PROXY'
  | 'ERR_EGRESS_DENY_CIDRS';

export class EgressError extends Error {
  override readonly name = 'EgressError';
  readonly code: EgressErrorCode;

  constructor(code: EgressErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Why the proxy refused a request by itself (as opposed to the policy). The
 * code goes into the `X-Egress-Blocked` header; the reason into the JSON body
 * and the network log.
 */
export type RefusalCode =
  | 'policy'
  | 'policy-error'
  | 'destination-address'
  | 'invalid-host'
  | 'host-mismatch'
  | 'sni-mismatch'
  | 'ambiguous-framing'
  | 'malformed-request'
  | 'unsupported-request'
  | 'unsupported-upgrade'
  | 'tls-handshake'
  | 'rate-limited'
  | 'secret-misplaced'
  | 'secret-unscrubbable';

export interface Refusal {
  readonly status: 400 | 403 | 429;
  readonly code: RefusalCode;
  readonly reason: string;
  /** With 429: seconds until asking again makes sense (the Retry-After header). */
  readonly retryAfterS?: number;
}

export function refusal(status: 400 | 403, code: RefusalCode, reason: string): Refusal {
  return { status, code, reason };
}

export function rateLimited(reason: string, retryAfterS: number): Refusal {
  return { status: 429, code: 'rate-limited', reason, retryAfterS };
}
