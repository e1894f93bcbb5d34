/**
 * What the audit store keeps, as the rest of the server hands it in and as
 * the administrator endpoints read it back. Timestamps are milliseconds
 * since the epoch in the store and ISO strings on the way out.
 */

/** One finished /execute request. */
export interface ExecutionRecord {
  id: string;
  subject: string | null;
  policySource: string;
  policyHash: string;
  policyVersion: string | null;
  language: string;
  /** The isolation tier the sandbox ran in, when the executor reports one. */
  tier: string | null;
  outcome: string;
  exitCode: number | null;
  signal: string | null;
  errorCode: string | null;
  durationMs: number | null;
  queuedMs: number | null;
  allowedRequests: number;
  blockedRequests: number;
  wouldBlockRequests: number;
  codeSha256: string;
  codeBytes: number;
  /** The program's text, only with AUDIT_STORE_CODE=true. */
  code: string | null;
  startedAt: number;
  finishedAt: number;
}

/** One egress decision of an execution. */
export interface DecisionRecord {
  executionId: string;
  at: number;
  method: string;
  scheme: string;
  host: string;
  port: number;
  /** Without the query string: queries carry tokens and ids, and rules never look at them. */
  path: string;
  allowed: boolean;
  /** Allowed only because the policy ran in audit mode: the enforcing policy would have blocked it. */
  wouldBlock: boolean;
  reason: string | null;
  rule: string | null;
  statusCode: number;
  /** Names (never values) of the secrets substituted into the request. */
  secrets: string[];
  durationMs: number;
}

export interface ExecutionFilter {
  subject?: string;
  outcome?: string;
  since?: number;
  until?: number;
  /** Only executions with at least one blocked (or would-be blocked) request. */
  blockedOnly?: boolean;
  limit: number;
  /** Opaque, from the previous page's `nextCursor`. */
  cursor?: string;
}

export interface ExecutionPage {
  executions: ExecutionRecord[];
  nextCursor: string | null;
}

export interface SummaryFilter {
  subject?: string;
  since?: number;
  until?: number;
}

export type DecisionKind = 'allowed' | 'blocked' | 'wouldBlock';

export interface SummaryRow {
  subject: string | null;
  host: string;
  method: string;
  decision: DecisionKind;
  reason: string | null;
  count: number;
}

export interface ObservedRequestFilter {
  subject: string;
  since?: number;
  until?: number;
  /** Most distinct requests returned, the most recently seen first. */
  limit: number;
}

/** One distinct request a subject's code made (what suggestions are made from). */
export interface ObservedRequestCount {
  method: string;
  host: string;
  port: number;
  path: string;
  /** Blocked, or let through only because the policy was in audit mode. */
  blocked: boolean;
  /** How many decisions it stands for in the window. */
  count: number;
  lastAt: number;
}
