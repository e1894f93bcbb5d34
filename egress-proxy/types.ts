import type { Decision, EgressRequest, RegistryResponse, SecretBinding } from '../policies/index.ts';

/** One entry of an execution's network log (DESIGN §6). */
export interface NetworkLogEntry {
  /** Method exactly as the client sent it (`CONNECT` for a refused tunnel). */
  method: string;
  /** `https://api.stripe.com/v1/products`: canonical host, raw path. */
  url: string;
  /** Canonical host name, or the raw one when it could not be canonicalised. */
  hostname: string;
  /** Status the client received; 0 when no HTTP response was possible (TLS refused, connection gone). */
  statusCode: number;
  blocked: boolean;
  reason?: string;
  /** Present (true) when the policy, in audit mode, let through what it would block; `reason` says why it would. */
  wouldBlock?: true;
  durationMs: number;
  /** Names of the secrets substituted into this request (never values); absent when none. */
  secrets?: string[];
}

export interface NetworkLogResult {
  entries: NetworkLogEntry[];
  /** True when requests were dropped from `entries` because the per-session cap was reached. */
  capped: boolean;
}

/**
 * One finished egress decision, handed to every observer (metrics, an audit
 * store) from the one place a request's passage through the proxy ends. The
 * field names are fixed: observers may persist them as they are.
 */
export interface EgressDecision {
  executionId: string;
  /** Method exactly as the client sent it (`CONNECT` for a tunnel refused or decided as a whole). */
  method: string;
  /** Canonical host (or the raw one when it could not be canonicalised; empty when none was readable). */
  host: string;
  /** 0 when no port was readable. */
  port: number;
  /** Origin-form path as checked (query included); empty for a tunnel or an unreadable target. */
  path: string;
  /** The network-log URL: canonical host, raw path. */
  url: string;
  allowed: boolean;
  /** Allowed only because the policy is in audit mode: enforcing, it would have blocked this. */
  wouldBlock: boolean;
  /** Why: the policy's reason, the proxy's refusal, or the upstream failure; null when none was given. */
  reason: string | null;
  /** What decided: the policy rule (`allowedDomains[0]`…) or the proxy's own check (`proxy:<code>`); null when nothing decided. */
  rule: string | null;
  /** Status the client received; 0 when no HTTP response was possible. */
  statusCode: number;
  durationMs: number;
  /** Names of the secrets substituted into the request (never values); absent when none. */
  secrets?: string[];
}

/** Called once per finished decision; must not throw (a throwing observer is logged and ignored). */
export type DecisionObserver = (decision: EgressDecision) => void;

/** The pino methods the proxy uses; a pino logger fits as is. */
export interface EgressLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** What `decide` learns about the session a request came through: the same object for every request of one session. */
export interface EgressSessionInfo<TContext> {
  readonly executionId: string;
  readonly context: TContext;
  /** The execution's secrets (names, hosts, places; values only for substitution). */
  readonly secrets: SecretBinding;
}

/**
 * The policy seam. Besides ordinary requests the proxy asks once per CONNECT,
 * before any TLS work, with `method: 'CONNECT'` and `path: ''`: that
 * question is about host and port only (may this port on this host be reached
 * at all?); every request inside the tunnel is still decided on its own.
 */
export type DecideFn<TContext> = (
  request: EgressRequest,
  session: EgressSessionInfo<TContext>,
) => Decision | Promise<Decision>;

/** Canonicalises a raw host (no port); null when it is not a usable host. */
export type CanonicalHostFn = (raw: string) => string | null;

/**
 * Reads a response the policy's Decision marked `learn` (registry metadata):
 * the whole body, decoded, before the client receives any of it, so what the
 * policy learns applies to the client's next request. The proxy only
 * delivers; what is learnt, and what it allows, is the policy's business.
 */
export type LearnFn<TContext> = (
  request: EgressRequest,
  response: RegistryResponse,
  session: EgressSessionInfo<TContext>,
) => void | Promise<void>;
