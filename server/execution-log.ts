/**
 * One canonical log line per /execute request (DESIGN §8, STYLE 10), with
 * fixed field names, and the executions metrics beside it: both are written
 * from the same facts in the same place, so the log and /metrics agree.
 * Nothing of the caller's token is in it; the subject is.
 */
import type { ExecuteRequest } from './execute-request.ts';
import { toApiError } from './errors.ts';
import type { ExecuteResponseData } from './execution-service.ts';
import type { Caller } from './identity/index.ts';
import type { Logger } from './logger.ts';
import type { ExecutionOutcome, ServiceMetrics } from './metrics.ts';

export const EXECUTION_LOG_MESSAGE = 'execution';

/** The canonical line's fields; log queries and tests rely on these names. */
export interface ExecutionLogLine {
  executionId: string | null;
  subject: string | null;
  policySource: string;
  language: string;
  outcome: ExecutionOutcome;
  durationMs: number | null;
  /** Present when the execution waited for admission. */
  queuedMs?: number;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  oomKilled: boolean;
  allowedRequests: number;
  blockedRequests: number;
  blockedHosts: string[];
  networkLogCapped: boolean;
  /** Set when the request failed instead of running to a result. */
  errorCode?: string;
  /** Names of the execution's secrets (never values); absent when it had none. */
  secrets?: string[];
}

export const EXECUTION_LOG_FIELDS = [
  'executionId', 'subject', 'policySource', 'language', 'outcome', 'durationMs', 'exitCode', 'signal',
  'timedOut', 'oomKilled', 'allowedRequests', 'blockedRequests', 'blockedHosts', 'networkLogCapped',
] as const satisfies ReadonlyArray<keyof ExecutionLogLine>;

export function outcomeOf(data: Pick<ExecuteResponseData, 'code' | 'timedOut' | 'oomKilled'>): ExecutionOutcome {
  if (data.timedOut) return 'timeout';
  if (data.oomKilled) return 'oom';
  return data.code === 0 ? 'ok' : 'nonzero_exit';
}

function lineFor(request: ExecuteRequest, caller: Caller, data: ExecuteResponseData): ExecutionLogLine {
  const blocked = data.networkLog.filter((entry) => entry.blocked);
  const queuedMs = (data as { queuedMs?: unknown }).queuedMs;
  return {
    executionId: data.executionId,
    subject: caller.subject ?? null,
    policySource: caller.policyInfo.source,
    language: request.language,
    outcome: outcomeOf(data),
    durationMs: data.durationMs,
    ...(typeof queuedMs === 'number' ? { queuedMs } : {}),
    exitCode: data.code,
    signal: data.signal,
    timedOut: data.timedOut,
    oomKilled: data.oomKilled,
    allowedRequests: data.networkLog.length - blocked.length,
    blockedRequests: blocked.length,
    blockedHosts: [...new Set(blocked.map((entry) => entry.hostname))],
    networkLogCapped: data.networkLogCapped === true,
  };
}

/** Runs one execution, then writes its canonical line and counts it, however it ended. */
export async function trackExecution(
  log: Logger,
  metrics: ServiceMetrics,
  request: ExecuteRequest,
  caller: Caller,
  run: () => Promise<ExecuteResponseData>,
  secretNames: readonly string[] = [],
): Promise<ExecuteResponseData> {
  const secrets = secretNames.length === 0 ? {} : { secrets: [...secretNames] };
  let data: ExecuteResponseData;
  try {
    data = await run();
  } catch (error) {
    const apiError = toApiError(error);
    const outcome: ExecutionOutcome = apiError !== null && (apiError.status < 500 || apiError.status === 503) ? 'rejected' : 'error';
    metrics.execution(outcome);
    const line: ExecutionLogLine = {
      executionId: null,
      subject: caller.subject ?? null,
      policySource: caller.policyInfo.source,
      language: request.language,
      outcome,
      durationMs: null,
      exitCode: null,
      signal: null,
      timedOut: false,
      oomKilled: false,
      allowedRequests: 0,
      blockedRequests: 0,
      blockedHosts: [],
      networkLogCapped: false,
      errorCode: apiError?.code ?? 'INTERNAL',
      ...secrets,
    };
    log.warn(line, EXECUTION_LOG_MESSAGE);
    throw error;
  }
  const line = { ...lineFor(request, caller, data), ...secrets };
  metrics.execution(line.outcome, data.durationMs);
  log.info(line, EXECUTION_LOG_MESSAGE);
  return data;
}
