/**
 * Turns what the server sees into audit records: the proxy's decisions (as
 * its decision observer, when the proxy runs in this process) and each
 * finished execution (by wrapping the execution service). With a remote
 * proxy the decisions happen in another process; they are then taken from
 * the execution's network log when it comes back, which carries method,
 * URL, result, reason and timing but not which rule decided.
 */
import { createHash } from 'node:crypto';
import type { EgressDecision } from '../../egress-proxy/index.ts';
import { toApiError } from '../errors.ts';
import type { ExecuteRequest } from '../execute-request.ts';
import type { ExecuteResponseData, ExecutionService, NetworkLogEntry } from '../execution-service.ts';
import { outcomeOf } from '../execution-log.ts';
import type { Caller } from '../identity/index.ts';
import type { DecisionRecord, ExecutionRecord } from './records.ts';

export interface AuditRecords {
  execution(record: ExecutionRecord): void;
  decision(record: DecisionRecord): void;
}

export interface RecorderOptions {
  records: AuditRecords;
  /** AUDIT_STORE_CODE: keep the program's text, not only its hash and size. */
  storeCode: boolean;
  /** The proxy runs elsewhere: take each execution's decisions from its network log. */
  decisionsFromNetworkLog: boolean;
  now?: () => number;
}

const withoutQuery = (path: string): string => {
  const q = path.indexOf('?');
  return q === -1 ? path : path.slice(0, q);
};
const schemeOf = (url: string): string => (url.startsWith('https:') ? 'https' : url.startsWith('http:') ? 'http' : '');

export function decisionRecordFrom(decision: EgressDecision, at: number): DecisionRecord {
  return {
    executionId: decision.executionId,
    at,
    method: decision.method,
    scheme: schemeOf(decision.url),
    host: decision.host,
    port: decision.port,
    path: withoutQuery(decision.path),
    allowed: decision.allowed,
    wouldBlock: decision.wouldBlock,
    reason: decision.reason,
    rule: decision.rule,
    statusCode: decision.statusCode,
    secrets: [...(decision.secrets ?? [])],
    durationMs: decision.durationMs,
  };
}

/** What the network log says of one request; the rule that decided is not in it. */
export function decisionRecordFromLog(executionId: string, entry: NetworkLogEntry, at: number): DecisionRecord {
  let port = 0;
  let path = '';
  try {
    const url = new URL(entry.url);
    port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    path = url.pathname;
  } catch {
    // A log entry for an unreadable target: host and method still say something.
  }
  return {
    executionId,
    at,
    method: entry.method,
    scheme: schemeOf(entry.url),
    host: entry.hostname,
    port,
    path: entry.method === 'CONNECT' ? '' : path,
    allowed: !entry.blocked,
    wouldBlock: entry.wouldBlock === true,
    reason: entry.reason ?? null,
    rule: null,
    statusCode: entry.statusCode,
    secrets: [...(entry.secrets ?? [])],
    durationMs: entry.durationMs,
  };
}

type Executions = Pick<ExecutionService, 'execute'>;

export class AuditRecorder {
  readonly #options: RecorderOptions;
  readonly #now: () => number;

  constructor(options: RecorderOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The proxy's decision observer; never throws. */
  readonly observeDecision = (decision: EgressDecision): void => {
    this.#options.records.decision(decisionRecordFrom(decision, this.#now()));
  };

  /** The execution service, recording every execution it finishes or refuses. */
  wrap(inner: Executions): Executions {
    return {
      execute: async (request, caller, options) => {
        const startedAt = this.#now();
        let data: ExecuteResponseData;
        try {
          data = await inner.execute(request, caller, options);
        } catch (error) {
          this.#record(request, caller, startedAt, { error });
          throw error;
        }
        this.#record(request, caller, startedAt, { data });
        return data;
      },
    };
  }

  #record(request: ExecuteRequest, caller: Caller, startedAt: number, ended: { data: ExecuteResponseData } | { error: unknown }): void {
    const finishedAt = this.#now();
    const { storeCode, records } = this.#options;
    const base = {
      subject: caller.subject ?? null,
      policySource: caller.policyInfo.source,
      policyHash: caller.policyInfo.hash,
      policyVersion: caller.policyInfo.version ?? null,
      language: request.language,
      tier: null as string | null,
      codeSha256: createHash('sha256').update(request.code).digest('hex'),
      codeBytes: Buffer.byteLength(request.code),
      code: storeCode ? request.code : null,
      startedAt,
      finishedAt,
    };
    if ('error' in ended) {
      const apiError = toApiError(ended.error);
      records.execution({
        ...base,
        // Refused before it had an id of its own: the record still needs one.
        id: `refused-${crypto.randomUUID()}`,
        outcome: apiError !== null && (apiError.status < 500 || apiError.status === 503) ? 'rejected' : 'error',
        exitCode: null,
        signal: null,
        errorCode: apiError?.code ?? 'INTERNAL',
        durationMs: null,
        queuedMs: null,
        allowedRequests: 0,
        blockedRequests: 0,
        wouldBlockRequests: 0,
      });
      return;
    }
    const { data } = ended;
    base.tier = data.isolation;
    const blocked = data.networkLog.filter((entry) => entry.blocked).length;
    records.execution({
      ...base,
      id: data.executionId,
      outcome: outcomeOf(data),
      exitCode: data.code,
      signal: data.signal,
      errorCode: null,
      durationMs: Math.round(data.durationMs),
      queuedMs: Math.round(data.queuedMs),
      allowedRequests: data.networkLog.length - blocked,
      blockedRequests: blocked,
      wouldBlockRequests: data.networkLog.filter((entry) => entry.wouldBlock === true).length,
    });
    if (this.#options.decisionsFromNetworkLog) {
      for (const entry of data.networkLog) records.decision(decisionRecordFromLog(data.executionId, entry, finishedAt));
    }
  }
}
