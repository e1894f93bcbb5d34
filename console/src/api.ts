/**
 * The console's only door to data: the /admin API with the administrator's
 * token in an Authorization header. The token lives in this module's memory
 * and nowhere else (no storage, no cookie, no URL), so closing or reloading
 * the tab signs out.
 */

export interface Execution {
  id: string;
  subject: string | null;
  policySource: string;
  policyHash: string;
  policyVersion: string | null;
  language: string;
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
  code: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Decision {
  executionId: string;
  at: string | null;
  method: string;
  scheme: string;
  host: string;
  port: number;
  path: string;
  allowed: boolean;
  wouldBlock: boolean;
  reason: string | null;
  rule: string | null;
  statusCode: number;
  secrets: string[];
  durationMs: number;
}

export type ExecutionDetail = Execution & { decisions: Decision[] };

export interface SummaryRow {
  subject: string | null;
  host: string;
  method: string;
  decision: 'allowed' | 'blocked' | 'wouldBlock';
  reason: string | null;
  count: number;
}

export interface SuggestedRule {
  host: string;
  method: string;
  path: string;
  covers: string[];
}

export interface Suggestion {
  subject: string;
  since: string;
  decisionsSeen: number;
  current: unknown;
  policy: unknown;
  diff: { addedDomains: string[]; addedRules: SuggestedRule[] };
  leftBlocked: Array<{ request: string; reason: string }>;
  lint: { ok: true; warnings: string[] } | { ok: false; problems: string[] };
}

export interface Explanation {
  lint: { ok: boolean; problems: string[]; warnings: string[] };
  decision: { allowed: boolean; reason: string; rule: string; host: string | null; path?: string } | null;
}

export interface Readiness {
  status: string;
  checks: Record<string, string>;
  isolation?: string[];
  details?: Record<string, unknown>;
}

/** An answer of the API that is not a success; `status` 401 means the token was refused. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiFailure';
  }
}

let token: string | null = null;
const signedOutListeners = new Set<(reason: string) => void>();

export const isSignedIn = (): boolean => token !== null;

export function onSignedOut(listener: (reason: string) => void): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

export function signOut(reason = ''): void {
  token = null;
  for (const listener of signedOutListeners) listener(reason);
}

async function request<T>(method: 'GET' | 'POST', path: string, body?: unknown, bearer = token): Promise<T> {
  if (bearer === null) throw new ApiFailure(401, 'SIGNED_OUT', 'Not signed in');
  const response = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${bearer}`, accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    credentials: 'omit',
    cache: 'no-store',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await response.json().catch(() => null)) as { success?: boolean; data?: T; error?: string; code?: string } | null;
  if (!response.ok || json?.success !== true) {
    const failure = new ApiFailure(response.status, json?.code ?? 'HTTP_ERROR', json?.error ?? `${method} ${path} answered ${response.status}`);
    if (response.status === 401 && bearer === token) signOut('The administrator token was refused.');
    throw failure;
  }
  return json.data as T;
}

/** Checks the token against the API before keeping it. */
export async function signIn(candidate: string): Promise<void> {
  await request('GET', '/admin/policy-cache', undefined, candidate);
  token = candidate;
}

const query = (params: Record<string, string | number | boolean | undefined>): string => {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '' && value !== false) search.set(key, String(value));
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
};

export interface ExecutionFilters {
  subject?: string;
  outcome?: string;
  since?: string;
  until?: string;
  blocked?: boolean;
  limit?: number;
  cursor?: string;
}

export const api = {
  executions: (filters: ExecutionFilters) =>
    request<{ executions: Execution[]; nextCursor: string | null }>('GET', `/admin/executions${query({ ...filters })}`),
  execution: (id: string) => request<ExecutionDetail>('GET', `/admin/executions/${encodeURIComponent(id)}`),
  summary: (params: { subject?: string; since?: string }) => request<{ rows: SummaryRow[] }>('GET', `/admin/egress/summary${query(params)}`),
  suggestion: (subject: string, params: { since?: string; blockedOnly?: boolean }) =>
    request<Suggestion>('GET', `/admin/policies/${encodeURIComponent(subject)}/suggestion${query(params)}`),
  policy: (subject: string) => request<{ subject: string; policy: unknown }>('GET', `/admin/policies/${encodeURIComponent(subject)}`),
  explain: (body: { policy: unknown; method?: string; url?: string }) => request<Explanation>('POST', '/admin/policies/explain', body),
};

/** Public endpoints of the service (no token): readiness and Prometheus metrics. */
export async function readiness(): Promise<Readiness> {
  const response = await fetch('/readyz', { cache: 'no-store', credentials: 'omit' });
  return (await response.json()) as Readiness;
}

export async function metricsText(): Promise<string> {
  const response = await fetch('/metrics', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new ApiFailure(response.status, 'METRICS', `/metrics answered ${response.status}`);
  return response.text();
}
