/**
 * Turns a validated `/execute` request and the caller's policy into one
 * sandbox run, and the run into the response's `data`.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { NetworkLogEntry, NetworkLogResult } from '../egress-proxy/index.ts';
import { PROXY_SOCKET_FILE, type ExecutionResult, type Executor } from '../executor/index.ts';
import { defaultPolicyResult, type CompiledPolicy, type PolicyInfo } from '../policies/index.ts';
import type { EgressGateway } from './egress-gateway.ts';
import type { ExecuteRequest } from './execute-request.ts';

export type { NetworkLogEntry };

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

export interface ExecuteResponseData extends ExecutionResult {
  executionId: string;
  networkLog: NetworkLogEntry[];
  networkLogCapped?: boolean;
  policyInfo: PolicyInfo;
}

export interface ExecutionServiceOptions {
  executor: Executor;
  /** Every sandbox's only route out (in-process or remote proxy); sessions carry the caller's compiled policy. */
  egress: EgressGateway;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
}

export class ExecutionService {
  constructor(private readonly options: ExecutionServiceOptions) {}

  async execute(request: ExecuteRequest, caller: Caller): Promise<ExecuteResponseData> {
    const executionId = randomUUID();
    let log: NetworkLogResult = { entries: [], capped: false };
    const timeoutMs = Math.min(request.timeoutMs ?? this.options.defaultTimeoutMs, this.options.maxTimeoutMs);
    const result = await this.options.executor.run({
      executionId,
      runtime: request.language,
      code: request.code,
      args: request.args,
      env: request.env,
      stdin: request.stdin,
      timeoutMs,
      // The session opens before the container starts and closes after it
      // ends; closing hands back the network log.
      openEgress: async (hostDir) => {
        const session = await this.options.egress.openSession({
          executionId,
          socketPath: join(hostDir, PROXY_SOCKET_FILE),
          policy: caller.policy,
        });
        return {
          close: async () => {
            log = await session.close();
          },
        };
      },
    });
    return {
      ...result,
      executionId,
      networkLog: log.entries,
      ...(log.capped ? { networkLogCapped: true } : {}),
      policyInfo: caller.policyInfo,
    };
  }
}
