/**
 * The shapes other modules rely on. The egress proxy hands every request it
 * sees to `decide` as an EgressRequest and acts on the Decision; it never
 * decides by itself.
 */

/**
 * One request as the proxy saw it, before any normalisation. `method: 'CONNECT'`
 * with `path: ''` is the tunnel question (may this host:port be reached at
 * all?): domain and port rules answer it, path rules do not, since every
 * request inside the tunnel is decided on its own.
 */
export interface EgressRequest {
  /** Request method exactly as sent (any case). */
  method: string;
  /** Host exactly as it arrived (CONNECT target or Host/URL host): may be `2130706433`, `[::ffff:7f00:1]`, `LOCALHOST.`. */
  host: string;
  /** Destination port. */
  port: number;
  /** `http` for plain proxy requests, `https` for requests inside an intercepted tunnel. */
  scheme: 'http' | 'https';
  /** Raw request target path with query, e.g. `/api/v1/users/123?x=1`; `''` for the tunnel question. */
  path: string;
  /** Request headers, lower-case names (method-override headers are read from here). */
  headers: Readonly<Record<string, string | string[] | undefined>>;
  /**
   * `_method` values of a small urlencoded form body, when the proxy read
   * one (frameworks read them as the method); checked like override headers.
   */
  formMethods?: readonly string[];
}

/** What `decide` answered, and why. */
export interface Decision {
  allowed: boolean;
  /** Human-readable, stable reason, e.g. `Method DELETE not allowed for *.okta.com`. */
  reason: string;
  /** Which rule decided, e.g. `blockedDomains[0]`, `apiPathRules["*.okta.com"][1]`, `allowedDomains[0]`, `default`. */
  rule: string;
  /** Canonical host the decision was made on (null when the host could not be parsed). */
  host: string | null;
  /**
   * Normalised path the path rules were checked against, present only when the
   * host has path rules and the path was unambiguous. Forward this path, not the
   * raw one, so upstream sees exactly what was checked.
   */
  path?: string;
  /**
   * Set on registry metadata the package closure must read: the proxy hands
   * the whole response body (size-capped) to the session's `learn` before the
   * client sees any of it, so what the client fetches next is already known.
   */
  learn?: boolean;
  /**
   * With `learn`: only the last this many bytes of the body are needed (a
   * wheel's central directory and, by PEP 427's advice, its `.dist-info`
   * sit at the end). The rest streams to the client unread; the tail is
   * handed over before the client receives it.
   */
  learnTail?: number;
  /**
   * Allowed only because the policy is in audit mode (enforcement.ts): the
   * enforcing policy would block it, for `reason`.
   */
  wouldBlock?: boolean;
}

/** A registry metadata response, body decoded (no content-encoding), as `learn` receives it. */
export interface RegistryResponse {
  statusCode: number;
  contentType: string | undefined;
  body: Uint8Array;
  /** Where `body` starts in the whole response: non-zero when only the tail was kept (`learnTail`). */
  bodyOffset?: number;
}
