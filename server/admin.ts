/**
 * Administrator endpoints for the policy cache (DESIGN §4):
 *
 *   GET    /admin/policy-cache         counters and size
 *   DELETE /admin/policy-cache         forget every cached policy
 *   POST   /admin/policy-cache/evict   forget one token's policy; body {"token": "<jwt>"}
 *
 * and, with the audit store on, the audit trail (audit/admin-routes.ts):
 *
 *   GET    /admin/executions           executions, newest first (filters, cursor pagination)
 *   GET    /admin/executions/{id}      one execution with its egress decisions
 *   GET    /admin/egress/summary       decision counts by subject, host, method, decision, reason
 *   GET    /admin/policies/{subject}/suggestion   the policy change that allows what was observed
 *
 * and the policy playground (admin-playground.ts):
 *
 *   GET    /admin/policies/{subject}   the subject's current policy
 *   POST   /admin/policies/explain     lint a policy and decide one request under it
 *
 * One token is named in the body, not the query string, because URLs end up
 * in access logs and proxy logs and a JWT must not. The endpoints exist only
 * when ADMIN_TOKEN is set (otherwise they answer 404 like any unknown route)
 * and want `Authorization: Bearer $ADMIN_TOKEN`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import express, { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { ApiError, badRequest } from './errors.ts';
import { describeIssues } from './execute-request.ts';
import { auditRoutes, type AuditQueries, type CurrentPolicyLookup } from './audit/admin-routes.ts';
import { policyPlaygroundRoutes } from './admin-playground.ts';
import type { PolicyCache } from './policy-service.ts';

export const ADMIN_POLICY_CACHE_PATH = '/admin/policy-cache';

export interface AdminOptions {
  adminToken: string;
  policies: Pick<PolicyCache, 'stats' | 'clear'>;
  /** The audit store, when it is on. */
  audit?: AuditQueries;
  /** A subject's current policy, for suggestions and the playground (the embedded policy folder; null with a remote policy API). */
  currentPolicy?: CurrentPolicyLookup;
}

const EvictRequestSchema = z.strictObject({ token: z.string().min(1).describe('the bearer token whose cached policy is forgotten') });

// Hashing first gives equal-length inputs, so the comparison time says nothing about the token.
const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

function requireAdmin(adminToken: string): RequestHandler {
  const expected = digest(adminToken);
  return (req, _res, next) => {
    const match = /^Bearer +(\S+) *$/i.exec(req.get('authorization') ?? '');
    if (match?.[1] === undefined || !timingSafeEqual(digest(match[1]), expected)) {
      throw new ApiError(401, 'ADMIN_UNAUTHORIZED', 'Administrator token required', undefined, { 'WWW-Authenticate': 'Bearer realm="admin"' });
    }
    next();
  };
}

export function adminRouter({ adminToken, policies, audit, currentPolicy }: AdminOptions): Router {
  const router = Router();
  router.use('/admin', requireAdmin(adminToken));

  router.get(ADMIN_POLICY_CACHE_PATH, (_req, res) => {
    res.json({ success: true, data: policies.stats() });
  });

  router.delete(ADMIN_POLICY_CACHE_PATH, (req, res) => {
    const removed = policies.stats().size;
    policies.clear();
    req.log?.info({ removed }, 'policy cache cleared');
    res.json({ success: true, data: { removed, stats: policies.stats() } });
  });

  router.post(`${ADMIN_POLICY_CACHE_PATH}/evict`, express.json({ limit: '64kb' }), (req, res) => {
    const parsed = EvictRequestSchema.safeParse(req.body);
    if (!parsed.success) throw badRequest('Body must be {"token": "<jwt>"}', describeIssues(parsed.error));
    const before = policies.stats().size;
    policies.clear(parsed.data.token);
    const removed = before - policies.stats().size;
    req.log?.info({ removed }, 'policy cache entry evicted');
    res.json({ success: true, data: { removed, stats: policies.stats() } });
  });
  router.use(policyPlaygroundRoutes(currentPolicy));
  if (audit !== undefined) router.use(auditRoutes(audit, currentPolicy));
  return router;
}
