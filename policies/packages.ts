/**
 * `allowedPackages` at the proxy (DESIGN §5): registry hosts need not be in
 * `allowedDomains`; a request to one is decided by the session's package
 * closure (package-closure.ts) instead, which starts from the rules
 * package-spec.ts compiles.
 */
import { applyEnforcement } from './enforcement.ts';
import { decide } from './matcher.ts';
import type { CompiledPolicy } from './matcher.ts';
import { PackageClosure } from './package-closure.ts';
import { DEFAULT_REGISTRY_HOSTS, packageRules, type RegistryHosts } from './package-spec.ts';
import type { MetadataFacts, RegistryMetadata } from './registry-metadata.ts';
import type { Decision, EgressRequest, RegistryResponse } from './types.ts';

/**
 * The decision for one sandbox session: the ordinary policy, except that a
 * registry host it would refuse only for not being in `allowedDomains` is
 * governed by the package closure instead. A registry host in
 * `blockedDomains` stays blocked; one the operator put in `allowedDomains`
 * (with its path rules) is decided by those, as written.
 */
export function decideWithPackages(policy: CompiledPolicy, closure: PackageClosure, request: EgressRequest): Decision {
  const decision = decide(policy, request);
  if (decision.allowed) return decision;
  // A registry request the package closure allows is allowed outright, not a would-be block.
  const byPackages = decision.rule === 'allowedDomains' ? closure.decide(request) : null;
  return byPackages ?? applyEnforcement(policy.policy, decision);
}

/** What the egress proxy tells about a session: one object per session, carrying its compiled policy. */
export interface PolicySession {
  readonly context: CompiledPolicy;
}

/**
 * The `decide` and `learn` pair an egress proxy is built with: each session
 * gets its own PackageClosure (made on its first registry request, dropped
 * with the session), so what one sandbox's installs taught never opens
 * anything for another. `readMetadata`, when given, reads metadata bodies
 * (the caller may do it off its event loop); otherwise they are read inline.
 */
export function sessionPackagePolicy(
  hosts: RegistryHosts = DEFAULT_REGISTRY_HOSTS,
  readMetadata?: (metadata: RegistryMetadata) => Promise<MetadataFacts>,
): {
  decide: (request: EgressRequest, session: PolicySession) => Decision;
  learn: (request: EgressRequest, response: RegistryResponse, session: PolicySession) => void | Promise<void>;
} {
  const closures = new WeakMap<PolicySession, PackageClosure>();
  const closureOf = (session: PolicySession): PackageClosure => {
    let closure = closures.get(session);
    if (closure === undefined) {
      closure = new PackageClosure(packageRules(session.context.policy.allowedPackages, hosts));
      closures.set(session, closure);
    }
    return closure;
  };
  return {
    decide: (request, session) => decideWithPackages(session.context, closureOf(session), request),
    learn: (request, response, session) => {
      const closure = closureOf(session);
      if (readMetadata === undefined) return closure.learn(request, response);
      const pending = closure.metadataIn(request, response);
      if (pending === null) return undefined;
      return readMetadata(pending.metadata).then((facts) => closure.apply(pending, facts));
    },
  };
}
