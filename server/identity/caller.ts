/**
 * Who is calling and under which policy. The bearer token has been verified
 * before this runs (a bad one ends the request with 401, never a silent
 * fallback); the caller's policy is then looked up with it. No token means
 * the default policy.
 */
import { defaultPolicyResult, type CompiledPolicy, type FetchPolicyOptions, type PolicyInfo, type PolicyResult } from '../../policies/index.ts';
import type { VerifiedToken } from './verifier.ts';

/** The verified caller of one request and the policy that governs its sandbox. */
export interface Caller {
  /** JWT subject; absent for anonymous callers. */
  subject?: string;
  policyInfo: PolicyInfo;
  /** What the egress proxy enforces for this caller's sandbox. The caller's JWT is deliberately not here. */
  policy: CompiledPolicy;
}

const anonymous = defaultPolicyResult();
export const ANONYMOUS_CALLER: Caller = { policyInfo: anonymous.info, policy: anonymous.compiled };

/** The part of the policy cache the resolver needs. */
export interface PolicyLookup {
  fetchPolicy: (token: string, options?: FetchPolicyOptions) => Promise<PolicyResult>;
}

export interface CallerLog {
  warn(obj: object, msg?: string): void;
}

/** The caller behind an already verified token (null: anonymous), with their policy. */
export async function resolveCaller(verified: VerifiedToken | null, policies: PolicyLookup, log?: CallerLog): Promise<Caller> {
  if (verified === null) return ANONYMOUS_CALLER;
  const result = await policies.fetchPolicy(verified.token, {
    subject: verified.subject,
    expiresAt: verified.expiresAt,
  });
  if (result.source === 'default') {
    log?.warn({ subject: verified.subject, reason: result.reason, errorCode: result.errorCode }, 'default policy in force: user policy unavailable');
  }
  return { subject: verified.subject, policyInfo: result.info, policy: result.compiled };
}
