/**
 * Turns a validated `/execute` request and the caller's policy into one
 * sandbox run, and the run into the response's `data`.
 */
import { randomUUID } from 'node:crypto';
import type { ExecutionResult, Executor, OpenEgress } from '../executor/index.ts';
import { defaultPolicyResult, type CompiledPolicy, type PolicyInfo } from '../policies/index.ts';
import type { ExecuteRequest } from './execute-request.ts';

export type { PolicyInfo };

/** The verified caller of one request and the policy that governs its sandbox. */
export interface Caller {
  /** JWT subject; absent for anonymous callers. */
  subject?: string;
  policyInfo: PolicyInfo;
  /** What the egress proxy enforces for this caller's sandbox. The caller's JWT is deliberately not here. */
  policy: CompiledPolicy;
}

const anonymous = defaultPolicyResult();
export const ANONYMOUS_CALLER: Caller = { policyInfo: anonymous.info, policy: anonymous.compiled };

export interface NetworkLogEntry {
  method: string;
  url: string;
  hostname: string;
  statusCode: number;
  blocked: boolean;
  reason?: string;
  durationMs: number;
}

export interface ExecuteResponseData extends ExecutionResult {
  executionId: string;
  networkLog: NetworkLogEntry[];
  networkLogCapped?: boolean;
  policyInfo: PolicyInfo;
}

/** How the service gets an egress route for one execution; null while no proxy is wired. */
export type EgressFactory = (executionId: string) => {
  open: OpenEgress;
  log(): { entries: NetworkLogEntry[]; capped: boolean };
} | null;

export interface ExecutionServiceOptions {
  executor: Executor;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
}

export class ExecutionService {
  constructor(private readonly options: ExecutionServiceOptions) {}

  async execute(request: ExecuteRequest, caller: Caller, egress: EgressFactory = () => null): Promise<ExecuteResponseData> {
    const executionId = randomUUID();
    const route = egress(executionId);
    const timeoutMs = Math.min(request.timeoutMs ?? this.options.defaultTimeoutMs, this.options.maxTimeoutMs);
    const result = await this.options.executor.run({
      executionId,
      runtime: request.language,
      code: request.code,
      args: request.args,
      env: request.env,
      stdin: request.stdin,
      timeoutMs,
      ...(route ? { openEgress: route.open } : {}),
    });
    const log = route?.log() ?? { entries: [], capped: false };
    return {
      ...result,
      executionId,
      networkLog: log.entries,
      ...(log.capped ? { networkLogCapped: true } : {}),
      policyInfo: caller.policyInfo,
    };
  }
}
