/**
 * Who is calling and under which policy: the bearer token is verified first
 * (a bad one ends the request with 401, never a silent fallback), then the
 * caller's policy is fetched with it. No token means the default policy.
 */
import type { Request } from 'express';
import type { FetchPolicyOptions, PolicyResult } from '../../policies/index.ts';
import { ANONYMOUS_CALLER, type Caller } from '../execution-service.ts';
import type { VerifiedToken } from './verifier.ts';

/** The part of PolicyFetcher the resolver needs. */
export interface PolicySource {
  fetchPolicy: (token: string, options?: FetchPolicyOptions) => Promise<PolicyResult>;
}

export interface CallerResolverOptions {
  authenticate: (authorization: string | undefined) => Promise<VerifiedToken | null>;
  policies: PolicySource;
}

export function createCallerResolver({ authenticate, policies }: CallerResolverOptions): (req: Request) => Promise<Caller> {
  return async (req) => {
    const verified = await authenticate(req.get('authorization'));
    if (verified === null) return ANONYMOUS_CALLER;
    const result = await policies.fetchPolicy(verified.token, verified.expiresAt === undefined ? {} : { expiresAt: verified.expiresAt });
    if (result.source === 'default') {
      req.log?.warn({ subject: verified.subject, reason: result.reason, errorCode: result.errorCode }, 'default policy in force: user policy unavailable');
    }
    return { subject: verified.subject, policyInfo: result.info, policy: result.compiled };
  };
}
