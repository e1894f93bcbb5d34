/**
 * What the parts of a session share: the proxy-wide runtime the EgressProxy
 * owns, and the session-scoped services the request handlers use. Kept apart
 * from the session class so the handlers depend on this seam, not on it.
 */
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { Admissions } from './admission.ts';
import type { AddressGuard } from './address-guard.ts';
import type { CaptureAccounting, CaptureLimits } from './capture-budget.ts';
import type { HostMap } from './host-map.ts';
import type { Destination } from './http-checks.ts';
import type { LeafCertIssuer } from './leaf-certs.ts';
import type { Responder, Sink } from './responder.ts';
import type { UpstreamProxy } from './upstream-proxy.ts';
import type { CanonicalHostFn, DecideFn, DecisionObserver, EgressLogger, LearnFn } from './types.ts';

/** What every session shares, owned by the EgressProxy. */
export interface ProxyRuntime<TContext> {
  decide: DecideFn<TContext>;
  canonicalHost: CanonicalHostFn;
  hostMap: HostMap;
  /** Which addresses may be dialled when the host map did not choose one. */
  addressGuard: AddressGuard;
  leaves: LeafCertIssuer;
  upstreamTls: tls.SecureContext;
  logger: EgressLogger;
  caCertPem: string;
  /** Called with every finished decision of every session. */
  observers: readonly DecisionObserver[];
  /** The operator's upstream proxy (EGRESS_UPSTREAM_PROXY): allowed traffic to unmapped hosts leaves through it. */
  upstreamProxy?: UpstreamProxy;
  /** Reads responses the policy marked `learn` (registry metadata), before the client sees them. */
  learn?: LearnFn<TContext>;
  /** Largest such response (on the wire and decoded); bigger ones are answered 502. */
  learnMaxBytes: number;
  /** What each session's captured responses may hold (capture-budget.ts). */
  captureLimits: CaptureLimits;
  /** What they hold, proxy-wide. */
  captures: CaptureAccounting;
}

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
  readonly admissions: Admissions<TContext>;
  /** Opens the exchange for one request, answered (when the proxy answers itself) through `sink`. */
  respond(sink: Sink, request: ExchangeRequest): Responder;
  /** The destination an accepted tunnel's stream is bound to. */
  tunnelOf(stream: Duplex): Destination | undefined;
  /** Binds an accepted tunnel's stream to its target and serves it as HTTP. */
  serveTunnel(stream: Duplex, dest: Destination, tracked: boolean): void;
  /** The pooled agent for upstream requests of this scheme, direct or through the upstream proxy. */
  agentFor(scheme: 'http' | 'https', throughProxy: boolean): http.Agent;
  /** Cut when the session closes. */
  trackUpstream(upstream: http.ClientRequest): void;
}
