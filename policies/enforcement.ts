/**
 * Learn mode: a policy with `"enforcement": "audit"` lets through what its
 * rules would block, marked `wouldBlock` with the reason the enforcing
 * policy gives, so administrators can watch a new integration before they
 * write its rules. Only the policy source can set it (the default policy
 * never has it), and only rule decisions are relaxed: an unreadable host or
 * port, an ambiguous path, an invalid method stay blocked, and so does
 * everything the proxy refuses by itself (address guard, Host/SNI/CONNECT
 * binding, framing), which never reaches this function.
 */
import type { Policy } from './schema.ts';
import type { Decision } from './types.ts';

export type Enforcement = 'enforce' | 'audit';

/** The rule decisions audit mode relaxes: domains, and methods and paths on a host with path rules. */
const RELAXABLE = /^(Domain \S+ is blocked by policy|Domain \S+ is not in allowed list|Method [A-Z0-9!#$%&'*+.^_`|~-]+ not allowed for |No rule allows )/u;

export function enforcementOf(policy: Pick<Policy, 'enforcement'>): Enforcement {
  return policy.enforcement ?? 'enforce';
}

/** The decision as the policy's enforcement mode has it. */
export function applyEnforcement(policy: Pick<Policy, 'enforcement'>, decision: Decision): Decision {
  if (decision.allowed || enforcementOf(policy) !== 'audit' || decision.host === null || !RELAXABLE.test(decision.reason)) return decision;
  return { ...decision, allowed: true, wouldBlock: true };
}
