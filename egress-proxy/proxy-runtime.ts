/**
 * The proxy-wide runtime the EgressProxy owns and every session shares. Apart
 * from the session scope (runtime.ts) because admission needs this and the
 * scope needs admission.
 */
import type tls from 'node:tls';
import type { AddressGuard } from './address-guard.ts';
import type { CaptureAccounting, CaptureLimits } from './capture-budget.ts';
import type { HostMap } from './host-map.ts';
import type { LeafCertIssuer } from './leaf-certs.ts';
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
