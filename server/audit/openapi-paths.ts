/**
 * The audit endpoints' part of the OpenAPI document, generated from the
 * zod schemas the routes validate queries with and answer in.
 */
import { z } from 'zod';
import {
  ADMIN_EGRESS_SUMMARY_PATH, ADMIN_EXECUTIONS_PATH, DecisionViewSchema, ExecutionsQuerySchema, ExecutionViewSchema, SuggestionQuerySchema, SummaryQuerySchema, SummaryRowSchema,
} from './admin-routes.ts';

type JsonObject = Record<string, unknown>;

function jsonSchema(schema: z.ZodType): JsonObject {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io: 'input', target: 'draft-2020-12', unrepresentable: 'any' }) as JsonObject;
  return rest;
}

/** A query schema's fields as OpenAPI parameters, each with its description. */
function queryParameters(schema: z.ZodObject): JsonObject[] {
  const { properties = {}, required = [] } = jsonSchema(schema) as { properties?: Record<string, JsonObject>; required?: string[] };
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return { name, in: 'query', required: required.includes(name), ...(description === undefined ? {} : { description }), schema: rest };
  });
}

const ok = (description: string, data: JsonObject) => ({
  description,
  content: { 'application/json': { schema: { type: 'object', required: ['success', 'data'], properties: { success: { const: true }, data } } } },
});
const errorBody = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorBody' } } } });
const adminErrors = { 401: errorBody('Missing or wrong administrator token') };

export const AUDIT_SCHEMAS = {
  AuditExecution: jsonSchema(ExecutionViewSchema),
  AuditDecision: jsonSchema(DecisionViewSchema),
  AuditSummaryRow: jsonSchema(SummaryRowSchema),
};

const ref = (name: keyof typeof AUDIT_SCHEMAS) => ({ $ref: `#/components/schemas/${name}` });

export function auditPaths(): JsonObject {
  return {
    [ADMIN_EXECUTIONS_PATH]: {
      get: {
        operationId: 'adminListExecutions',
        summary: 'Executions in the audit store, newest first',
        security: [{ admin: [] }],
        parameters: queryParameters(ExecutionsQuerySchema),
        responses: {
          200: ok('One page; pass nextCursor as cursor for the next', {
            type: 'object',
            properties: { executions: { type: 'array', items: ref('AuditExecution') }, nextCursor: { type: ['string', 'null'] } },
          }),
          400: errorBody('Bad query; details names each bad parameter'),
          ...adminErrors,
        },
      },
    },
    [`${ADMIN_EXECUTIONS_PATH}/{id}`]: {
      get: {
        operationId: 'adminGetExecution',
        summary: 'One execution with its egress decisions',
        security: [{ admin: [] }],
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          200: ok('The execution', { allOf: [ref('AuditExecution'), { type: 'object', properties: { decisions: { type: 'array', items: ref('AuditDecision') } } }] }),
          404: errorBody('No such execution in the store'),
          ...adminErrors,
        },
      },
    },
    [ADMIN_EGRESS_SUMMARY_PATH]: {
      get: {
        operationId: 'adminEgressSummary',
        summary: 'Egress decision counts by subject, host, method, decision and reason',
        security: [{ admin: [] }],
        parameters: queryParameters(SummaryQuerySchema),
        responses: {
          200: ok('Counts, largest first', { type: 'object', properties: { rows: { type: 'array', items: ref('AuditSummaryRow') } } }),
          400: errorBody('Bad query'),
          ...adminErrors,
        },
      },
    },
    '/admin/policies/{subject}/suggestion': {
      get: {
        operationId: 'adminPolicySuggestion',
        summary: 'The smallest policy change that allows what the subject\'s code was seen doing',
        description:
          'From the audit store: allowedDomains entries and apiPathRules (ids and hashes in a segment generalised to *, a folder seen with many children to folder/*), ' +
          'each rule with the requests it covers; blockedDomains and deny rules are never overridden (leftBlocked). `policy` is the whole suggested policy, linted (`lint`).',
        security: [{ admin: [] }],
        parameters: [{ name: 'subject', in: 'path', required: true, schema: { type: 'string' } }, ...queryParameters(SuggestionQuerySchema)],
        responses: {
          200: ok('The suggestion', {
            type: 'object',
            properties: {
              subject: { type: 'string' },
              since: { type: 'string' },
              decisionsSeen: { type: 'integer', description: 'decisions in the window the suggestion was made from (of the 10,000 most recently seen distinct requests)' },
              current: { description: 'the policy the suggestion starts from; null when it could not be read (a remote policy API)' },
              policy: { type: 'object' },
              diff: { type: 'object', properties: { addedDomains: { type: 'array', items: { type: 'string' } }, addedRules: { type: 'array', items: { type: 'object' } } } },
              leftBlocked: { type: 'array', items: { type: 'object' } },
              lint: { type: 'object' },
            },
          }),
          400: errorBody('Bad query'),
          ...adminErrors,
        },
      },
    },
  };
}
