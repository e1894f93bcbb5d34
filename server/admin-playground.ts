/**
 * The policy playground's administrator endpoints (mounted by admin.ts,
 * behind ADMIN_TOKEN):
 *
 *   GET  /admin/policies/{subject}   the subject's current policy document, secret values redacted (embedded policy folder only)
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

type JsonObject = Record<string, unknown>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as JsonObject;
  return rest;
}

export const PLAYGROUND_SCHEMAS = {
  PolicyExplainRequest: jsonSchema(ExplainRequestSchema, 'input'),
  PolicyExplanation: jsonSchema(ExplainResponseSchema, 'output'),
};

/** The playground's part of the OpenAPI document. */
export function playgroundPaths(): JsonObject {
  const errorBody = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } } });
  const ok = (description: string, data: JsonObject) => ({
    description,
    content: { 'application/json': { schema: { type: 'object', required: ['success', 'data'], properties: { success: { const: true }, data } } } },
  });
  const unauthorized = { 401: errorBody('Missing or wrong administrator token') };
  return {
    [ADMIN_POLICY_EXPLAIN_PATH]: {
      post: {
        operationId: 'adminExplainPolicy',
        summary: 'Lint a policy and decide one request under it, as `sandbox-policy explain` does',
        security: [{ admin: [] }],
        requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/PolicyExplainRequest' } } } },
        responses: {
          200: ok('The lint result and, given a method and URL, the decision', { $ref: '#/components/schemas/PolicyExplanation' }),
          400: errorBody('Bad body or unreadable URL; details names the field'),
          ...unauthorized,
        },
      },
    },
    [ADMIN_POLICY_PATH]: {
      get: {
        operationId: 'adminGetPolicy',
        summary: 'A subject\'s current policy, from the embedded policy folder, secret values redacted',
        security: [{ admin: [] }],
        parameters: [{ name: 'subject', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          200: ok('The policy document', { type: 'object', properties: { subject: { type: 'string' }, policy: { type: 'object' } } }),
          404: errorBody('No policy for the subject in the folder, or policies come from a remote policy API'),
          ...unauthorized,
        },
      },
    },
  };
}
