/**
 * Turns a validated `/execute` request and the caller's policy into one
 * sandbox run, and the run into the response's `data`.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { NetworkLogEntry, NetworkLogResult } from '../egress-proxy/index.ts';
import { PROXY_SOCKET_FILE, type ExecutionResult, type Executor } from '../executor/index.ts';
import { checkRequestedPackages, defaultPolicyResult, packageRules, type CompiledPolicy, type Ecosystem, type PolicyInfo } from '../policies/index.ts';
import type { EgressGateway } from './egress-gateway.ts';
import { ApiError, badRequest } from './errors.ts';
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
  /** Registry host the install step uses (NPM_REGISTRY_HOST). */
  npmRegistryHost: string;
}

const ECOSYSTEMS: Readonly<Record<string, Ecosystem>> = { node: 'npm', python: 'pypi' };

/**
 * Refuses, before any sandbox exists, packages the caller's policy does not
 * cover: each by name, so the caller knows what to ask for.
 */
function checkPackages(request: ExecuteRequest, caller: Caller): string[] {
  if (request.packages.length === 0) return [];
  const ecosystem = ECOSYSTEMS[request.language];
  if (ecosystem === undefined) throw badRequest(`packages cannot be installed for ${request.language}`, [{ field: 'packages', message: 'not supported for this language' }]);
  const checked = checkRequestedPackages(request.packages, ecosystem, packageRules(caller.policy.policy.allowedPackages));
  if (checked.ok) return checked.specs.map((s) => s.spec);
  if (checked.kind === 'invalid') {
    throw badRequest(`Invalid request: ${checked.problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, checked.problems);
  }
  const names = checked.problems.map((p) => p.package ?? p.field);
  throw new ApiError(400, 'PACKAGE_NOT_ALLOWED', `${names.length === 1 ? 'Package' : 'Packages'} not in allowedPackages: ${names.join(', ')}`, checked.problems);
}

export class ExecutionService {
  constructor(private readonly options: ExecutionServiceOptions) {}

  async execute(request: ExecuteRequest, caller: Caller): Promise<ExecuteResponseData> {
    const packages = checkPackages(request, caller);
    const executionId = randomUUID();
    let log: NetworkLogResult = { entries: [], capped: false };
    const timeoutMs = Math.min(request.timeoutMs ?? this.options.defaultTimeoutMs, this.options.maxTimeoutMs);
    const result = await this.options.executor.run({
      executionId,
      runtime: request.language,
      allowedBinaries: caller.policy.policy.allowedBinaries,
      code: request.code,
      args: request.args,
      env: request.env,
      stdin: request.stdin,
      ...(packages.length > 0 ? { packages, packageRegistry: this.options.npmRegistryHost } : {}),
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
