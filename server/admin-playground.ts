/**
 * The policy playground's administrator endpoints (mounted by admin.ts,
 * behind ADMIN_TOKEN):
 *
 *   GET  /admin/policies/{subject}   the subject's current policy document (embedded policy folder only)
 *   POST /admin/policies/explain     lint a policy and, given a method and URL, decide that request under it
 *
 * The answer is the one `sandbox-policy explain` prints: the same lint, the
 * same URL parsing and the same matcher, so what the console shows is what
 * the proxy would do.
 */
import express, { Router } from 'express';
import { z } from 'zod';
import { compilePolicy, decide, EgressUrlError, egressRequestFromUrl, lintPolicy } from '../policies/index.ts';
import { ApiError, badRequest } from './errors.ts';
import { describeIssues } from './execute-request.ts';

export const ADMIN_POLICY_EXPLAIN_PATH = '/admin/policies/explain';
export const ADMIN_POLICY_PATH = '/admin/policies/{subject}';

/** A subject's current policy document, or null when it cannot be had (a remote policy API needs the user's token). */
export type PolicyLookup = (subject: string) => Promise<unknown>;

export const ExplainRequestSchema = z.strictObject({
  policy: z.unknown().describe('a policy in the policy API format, as the policy source would send it'),
  method: z.string().min(1).max(32).optional().describe('request method; with url, the request to decide'),
  url: z.string().min(1).max(8192).optional().describe('absolute http:// or https:// URL'),
});

export const ExplainResponseSchema = z.object({
  lint: z.object({
    ok: z.boolean(),
    problems: z.array(z.string()).describe('`path: message` lines; the policy is refused while there are any'),
    warnings: z.array(z.string()),
  }),
  decision: z
    .object({
      allowed: z.boolean(),
      reason: z.string(),
      rule: z.string().describe('what decided, e.g. apiPathRules["*.okta.com"][1]'),
      host: z.string().nullable(),
      path: z.string().optional(),
    })
    .nullable()
    .describe('null without a method and URL, or when the policy has problems'),
});
export type ExplainResponse = z.infer<typeof ExplainResponseSchema>;

export function explainPolicy(policy: unknown, request?: { method: string; url: string }): ExplainResponse {
  const linted = lintPolicy(policy);
  if (!linted.ok) return { lint: { ok: false, problems: linted.problems, warnings: [] }, decision: null };
  const lint = { ok: true, problems: [], warnings: linted.warnings };
  if (request === undefined) return { lint, decision: null };
  let egress;
  try {
    egress = egressRequestFromUrl(request.method.toUpperCase(), request.url);
  } catch (error) {
    if (error instanceof EgressUrlError) throw badRequest(error.message, [{ field: 'url', message: error.message }]);
    throw error;
  }
  const { allowed, reason, rule, host, path } = decide(compilePolicy(linted.policy), egress);
  return { lint, decision: { allowed, reason, rule, host, ...(path === undefined ? {} : { path }) } };
}

export function policyPlaygroundRoutes(lookup: PolicyLookup = () => Promise.resolve(null)): Router {
  const router = Router();
  router.post(ADMIN_POLICY_EXPLAIN_PATH, express.json({ limit: '256kb' }), (req, res) => {
    const parsed = ExplainRequestSchema.safeParse(req.body);
    if (!parsed.success) throw badRequest('Body must be {"policy": {...}, "method"?: "GET", "url"?: "https://…"}', describeIssues(parsed.error));
    const { policy, method, url } = parsed.data;
    if ((method === undefined) !== (url === undefined)) {
      const field = method === undefined ? 'method' : 'url';
      throw badRequest(`${field} is needed with ${field === 'method' ? 'url' : 'method'}`, [{ field, message: 'required together with the other' }]);
    }
    res.json({ success: true, data: explainPolicy(policy, method === undefined || url === undefined ? undefined : { method, url }) });
  });

  router.get('/admin/policies/:subject', async (req, res) => {
    const subject = req.params.subject;
    const policy = await lookup(subject).catch(() => null);
    if (policy === null) {
      throw new ApiError(404, 'POLICY_NOT_FOUND', `No policy for ${JSON.stringify(subject)} in the policy folder (a remote policy API answers only with the user's token)`);
    }
    res.json({ success: true, data: { subject, policy } });
  });
  return router;
}
