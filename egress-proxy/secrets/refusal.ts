/**
 * Why the proxy refuses a request or a response because of a secret. The
 * reason names the secret and the destination, never a value or a
 * placeholder, so it can go to the client, the network log and the log line.
 */

export type SecretRefusalCode = 'secret-misplaced' | 'secret-unscrubbable';

export interface SecretRefusal {
  /** 403: the request carried a placeholder where it may not go. 502: the response could not be scrubbed. */
  readonly status: 403 | 502;
  readonly code: SecretRefusalCode;
  readonly reason: string;
  /** The secret concerned, when there is one. */
  readonly secret?: string;
}

/** Where a placeholder was found in a request. */
export type RequestPlace = 'header' | 'header-name' | 'query' | 'body' | 'path' | 'host';

const PLACE_TEXT: Record<RequestPlace, string> = {
  header: 'in a header',
  'header-name': 'in a header name',
  query: 'in the query',
  body: 'in the body',
  path: 'in the path',
  host: 'in the host name',
};

/** `Secret STRIPE_KEY may not be sent to api.github.com` (host) or `… in the query` (place). */
export function misplacedSecret(name: string, host: string, place: RequestPlace | null, detail?: string): SecretRefusal {
  const where = place === null ? '' : ` ${PLACE_TEXT[place]}`;
  return {
    status: 403,
    code: 'secret-misplaced',
    reason: `Secret ${name} may not be sent to ${host}${where}${detail === undefined ? '' : ` (${detail})`}`,
    secret: name,
  };
}

/** Thrown by the body streams, so a pipeline fails with the refusal attached. */
export class SecretRefusalError extends Error {
  override readonly name = 'SecretRefusalError';
  readonly refusal: SecretRefusal;

  constructor(refusal: SecretRefusal) {
    super(refusal.reason);
    this.refusal = refusal;
  }
}
