/**
 * Turns a validated `/execute` request and the caller's policy into one
 * sandbox run, and the run into the response's `data`.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { NetworkLogEntry, NetworkLogResult } from '../egress-proxy/index.ts';
import { SANDBOX_RUNTIMES } from '../images/index.ts';
import { PROXY_SOCKET_FILE, type ExecutionJob, type ExecutionResult } from '../executor/index.ts';
import { checkRequestedPackages, packageRules, type Ecosystem, type PolicyInfo } from '../policies/index.ts';
import type { EgressGateway } from './egress-gateway.ts';
import type { Admission } from './admission.ts';
import { ApiError, badRequest } from './errors.ts';
import type { ExecuteRequest } from './execute-request.ts';
import type { Caller } from './identity/index.ts';

export type { NetworkLogEntry };

export type { PolicyInfo };

export interface ExecuteResponseData extends ExecutionResult {
  executionId: string;
  networkLog: NetworkLogEntry[];
  networkLogCapped?: boolean;
  policyInfo: PolicyInfo;
  /** Time spent waiting for an execution slot before the run (admission queue). */
  queuedMs: number;
}

/** Where jobs run: the warm pool (which falls back to the cold path) or the executor itself. */
export interface JobRunner {
  run(job: ExecutionJob): Promise<ExecutionResult>;
}

export interface ExecutionServiceOptions {
  executor: JobRunner;
  admission: Admission;
  /** Every sandbox's only route out (in-process or remote proxy); sessions carry the caller's compiled policy. */
  egress: EgressGateway;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  /** Registry host each ecosystem's install step uses (NPM_REGISTRY_HOST, the first of PYPI_HOSTS). */
  packageRegistries: Readonly<Record<Ecosystem, string>>;
}

/**
 * Refuses, before any sandbox exists, packages the caller's policy does not
 * cover: each by name, so the caller knows what to ask for.
 */
function checkPackages(request: ExecuteRequest, caller: Caller): { ecosystem: Ecosystem; specs: string[] } | null {
  if (request.packages.length === 0) return null;
  const ecosystem: Ecosystem | undefined = SANDBOX_RUNTIMES[request.language].ecosystem;
  if (ecosystem === undefined) throw badRequest(`packages cannot be installed for ${request.language}`, [{ field: 'packages', message: 'not supported for this language' }]);
  const checked = checkRequestedPackages(request.packages, ecosystem, packageRules(caller.policy.policy.allowedPackages));
  if (checked.ok) return { ecosystem, specs: checked.specs.map((s) => s.spec) };
  if (checked.kind === 'invalid') {
    throw badRequest(`Invalid request: ${checked.problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`, checked.problems);
  }
  const names = checked.problems.map((p) => p.package ?? p.field);
  throw new ApiError(400, 'PACKAGE_NOT_ALLOWED', `${names.length === 1 ? 'Package' : 'Packages'} not in allowedPackages: ${names.join(', ')}`, checked.problems);
}

export class ExecutionService {
  constructor(private readonly options: ExecutionServiceOptions) {}

  /** `signal` aborts a request still waiting in the queue (the client went away). */
  async execute(request: ExecuteRequest, caller: Caller, signal?: AbortSignal): Promise<ExecuteResponseData> {
    const packages = checkPackages(request, caller);
    const executionId = randomUUID();
    let log: NetworkLogResult = { entries: [], capped: false };
    const budgetMs = Math.min(request.timeoutMs ?? this.options.defaultTimeoutMs, this.options.maxTimeoutMs);
    // The request's timeout is its whole budget: the wait for a slot counts
    // against it and may take at most half, so an overloaded server still
    // answers within the timeout (plus sandbox start and teardown).
    const slot = await this.options.admission.acquire(budgetMs / 2, signal);
    const timeoutMs = Math.max(1, budgetMs - slot.queuedMs);
    let result: ExecutionResult;
    try {
      result = await this.options.executor.run({
        executionId,
        runtime: request.language,
        allowedBinaries: caller.policy.policy.allowedBinaries,
        code: request.code,
        args: request.args,
        env: request.env,
        stdin: request.stdin,
        ...(packages === null ? {} : { packages: packages.specs, packageRegistry: this.options.packageRegistries[packages.ecosystem] }),
        timeoutMs,
        // The session opens when the job reaches its sandbox (a pooled one
        // has no route out until then) and closes after it ends; closing
        // hands back the network log.
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
    } finally {
      slot.release();
    }
    return {
      ...result,
      executionId,
      networkLog: log.entries,
      ...(log.capped ? { networkLogCapped: true } : {}),
      policyInfo: caller.policyInfo,
      queuedMs: slot.queuedMs,
    };
  }
}
