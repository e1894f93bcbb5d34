/**
 * What the parts of a session share: the proxy-wide runtime the EgressProxy
 * owns (proxy-runtime.ts), and the session-scoped services the request
 * handlers use. Kept apart from the session class so the handlers depend on
 * this seam, not on it.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { SecretBinding } from '../policies/index.ts';
import type { Admissions } from './admission.ts';
import type { Destination } from './http-checks.ts';
import type { ProxyRuntime } from './proxy-runtime.ts';
import type { Responder, Sink } from './responder.ts';

export type { ProxyRuntime } from './proxy-runtime.ts';

/** One exchange as it starts: its network-log slot is taken in arrival order. */
export interface ExchangeRequest {
  method: string;
  /** Null when the request named no usable destination. */
  dest: Destination | null;
  url: string;
  /** Logged as the host when there is no destination. */
  rawHostname?: string;
  /** Origin-form path as checked; empty when there is none. */
  path?: string;
}

/** A session's services, as its request handlers see them. */
export interface SessionScope<TContext> {
  readonly rt: ProxyRuntime<TContext>;
  readonly executionId: string;
  /** The execution's secrets: substituted into allowed requests, scrubbed from responses. */
  readonly secrets: SecretBinding;
  readonly admissions: Admissions<TContext>;
  /** Opens the exchange for one request, answered (when the proxy answers itself) through `sink`. */
  respond(sink: Sink, request: ExchangeRequest): Responder;
  /** The destination an accepted tunnel's stream is bound to. */
  tunnelOf(stream: Duplex): Destination | undefined;
  /** Binds an accepted tunnel's stream to its target and serves it as HTTP. */
  serveTunnel(stream: Duplex, dest: Destination, tracked: boolean): void;
  /** The pooled agent for upstream requests of this scheme, direct or through the upstream proxy. */
  agentFor(scheme: 'http' | 'https', throughProxy: boolean): http.Agent;
  /** An upgrade's upstream request, cut when the session closes (pooled requests are cut with their agents). */
  trackUpgrade(upstream: http.ClientRequest): void;
}
