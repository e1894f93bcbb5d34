/**
 * The audit trail's administrator endpoints (mounted by admin.ts, behind
 * ADMIN_TOKEN). Query parameters are validated with the schemas below, which
 * the OpenAPI document is generated from too.
 */
import { Router } from 'express';
import { lintPolicy, suggestPolicy, type PolicyApi } from '../../policies/index.ts';
import { z } from 'zod';
import { ApiError, badRequest } from '../errors.ts';
import { describeIssues } from '../execute-request.ts';
import type { DecisionRecord, ExecutionRecord, SummaryRow } from './records.ts';
import type { AuditStore } from './store.ts';

export const ADMIN_EXECUTIONS_PATH = '/admin/executions';
export const ADMIN_EGRESS_SUMMARY_PATH = '/admin/egress/summary';
export const MAX_PAGE_SIZE = 500;

export type AuditQueries = Pick<AuditStore, 'listExecutions' | 'getExecution' | 'summary' | 'observedRequests'>;

/** A subject's current policy document, or null when it cannot be had (a remote policy API needs the user's token). */
export type CurrentPolicyLookup = (subject: string) => Promise<unknown>;

/** Most distinct requests a suggestion is made from (the most recently seen); every decision of each counts. */
export const SUGGESTION_REQUEST_LIMIT = 10_000;

/** An instant as an ISO 8601 date-time or milliseconds since the epoch. */
const Instant = z
  .string()
  .transform((v, ctx) => {
    const ms = /^\d+$/u.test(v) ? Number(v) : Date.parse(v);
    if (Number.isNaN(ms)) {
      ctx.addIssue({ code: 'custom', message: 'not an ISO 8601 date-time or epoch milliseconds' });
      return z.NEVER;
    }
    return ms;
  })
  .describe('ISO 8601 date-time (2026-01-31T00:00:00Z) or milliseconds since the epoch');

export const ExecutionsQuerySchema = z.strictObject({
  subject: z.string().min(1).optional().describe('only this JWT subject'),
  outcome: z.enum(['ok', 'nonzero_exit', 'timeout', 'oom', 'rejected', 'error']).optional(),
  since: Instant.optional().describe('started at or after'),
  until: Instant.optional().describe('started before'),
  blocked: z.enum(['true', 'false']).optional().describe('true: only executions with a blocked (or would-be blocked) request'),
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).default(50),
  cursor: z.string().min(1).optional().describe('nextCursor of the previous page'),
});

export const SuggestionQuerySchema = z.strictObject({
  since: Instant.optional().describe('decided at or after (default: the last 7 days)'),
  until: Instant.optional().describe('decided before'),
  blockedOnly: z.enum(['true', 'false']).optional().describe('true: only allow what was blocked (or would have been), not everything seen'),
});

export const SummaryQuerySchema = z.strictObject({
  subject: z.string().min(1).optional(),
  since: Instant.optional().describe('decided at or after'),
  until: Instant.optional().describe('decided before'),
});

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export const executionView = (e: ExecutionRecord) => ({ ...e, startedAt: iso(e.startedAt), finishedAt: iso(e.finishedAt) });
export const decisionView = (d: DecisionRecord) => ({ ...d, at: iso(d.at) });

export const ExecutionViewSchema = z.object({
  id: z.string(),
  subject: z.string().nullable(),
  policySource: z.string(),
  policyHash: z.string().describe('policyInfo.hash of the policy it ran under'),
  policyVersion: z.string().nullable(),
  language: z.string(),
  tier: z.string().nullable(),
  outcome: z.string(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  errorCode: z.string().nullable().describe('for refused executions: the error code answered'),
  durationMs: z.number().int().nullable(),
  queuedMs: z.number().int().nullable(),
  allowedRequests: z.number().int(),
  blockedRequests: z.number().int(),
  wouldBlockRequests: z.number().int(),
  codeSha256: z.string(),
  codeBytes: z.number().int(),
  code: z.string().nullable().describe('only with AUDIT_STORE_CODE=true'),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});

export const DecisionViewSchema = z.object({
  executionId: z.string(),
  at: z.string().nullable(),
  method: z.string(),
  scheme: z.string(),
  host: z.string(),
  port: z.number().int(),
  path: z.string().describe('without the query string'),
  allowed: z.boolean(),
  wouldBlock: z.boolean(),
  reason: z.string().nullable(),
  rule: z.string().nullable().describe('what decided; null when recorded from a remote proxy\'s network log'),
  statusCode: z.number().int(),
  secrets: z.array(z.string()).describe('names of secrets substituted, never values'),
  durationMs: z.number().int(),
});

export const SummaryRowSchema = z.object({
  subject: z.string().nullable(),
  host: z.string(),
  method: z.string(),
  decision: z.enum(['allowed', 'blocked', 'wouldBlock']),
  reason: z.string().nullable(),
  count: z.number().int(),
}) satisfies z.ZodType<SummaryRow>;

function parseQuery<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  const parsed = schema.safeParse(query);
  if (!parsed.success) {
    const details = describeIssues(parsed.error);
    throw badRequest(`Invalid query: ${details.map((d) => `${d.field}: ${d.message}`).join('; ')}`, details);
  }
  return parsed.data;
}

export function auditRoutes(audit: AuditQueries, currentPolicy: CurrentPolicyLookup = () => Promise.resolve(null)): Router {
  const router = Router();

  router.get('/admin/policies/:subject/suggestion', async (req, res) => {
    const q = parseQuery(SuggestionQuerySchema, req.query);
    const subject = req.params.subject;
    const since = q.since ?? Date.now() - 7 * 24 * 60 * 60 * 1000;
    const observed = await audit.observedRequests({ subject, since, ...(q.until === undefined ? {} : { until: q.until }), limit: SUGGESTION_REQUEST_LIMIT });
    const document = await currentPolicy(subject).catch(() => null);
    const linted = document === null ? null : lintPolicy(document);
    const current: PolicyApi = linted?.ok === true ? linted.api : { allowedDomains: [] };
    const suggestion = suggestPolicy(
      current,
      observed.map((r) => ({ method: r.method, host: r.host, port: r.port, path: r.path, blocked: r.blocked })),
      { blockedOnly: q.blockedOnly === 'true' },
    );
    res.json({
      success: true,
      data: { subject, since: new Date(since).toISOString(), decisionsSeen: observed.reduce((sum, r) => sum + r.count, 0), current: linted?.ok === true ? current : null, ...suggestion },
    });
  });

  router.get(ADMIN_EXECUTIONS_PATH, async (req, res) => {
    const q = parseQuery(ExecutionsQuerySchema, req.query);
    const page = await audit.listExecutions({
      limit: q.limit,
      ...(q.subject === undefined ? {} : { subject: q.subject }),
      ...(q.outcome === undefined ? {} : { outcome: q.outcome }),
      ...(q.since === undefined ? {} : { since: q.since }),
      ...(q.until === undefined ? {} : { until: q.until }),
      ...(q.blocked === 'true' ? { blockedOnly: true } : {}),
      ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
    });
    res.json({ success: true, data: { executions: page.executions.map(executionView), nextCursor: page.nextCursor } });
  });

  router.get(`${ADMIN_EXECUTIONS_PATH}/:id`, async (req, res) => {
    const found = await audit.getExecution(req.params.id);
    if (found === null) throw new ApiError(404, 'EXECUTION_NOT_FOUND', `No execution ${JSON.stringify(req.params.id)} in the audit store`);
    res.json({ success: true, data: { ...executionView(found.execution), decisions: found.decisions.map(decisionView) } });
  });

  router.get(ADMIN_EGRESS_SUMMARY_PATH, async (req, res) => {
    const q = parseQuery(SummaryQuerySchema, req.query);
    const rows = await audit.summary({
      ...(q.subject === undefined ? {} : { subject: q.subject }),
      ...(q.since === undefined ? {} : { since: q.since }),
      ...(q.until === undefined ? {} : { until: q.until }),
    });
    res.json({ success: true, data: { rows } });
  });
  return router;
}
