/**
 * Turns a validated `/execute` request and the caller's policy into one
 * sandbox run, and the run into the response's `data`.
 */
import { randomUUID } from 'node:crypto';
import { SANDBOX_RUNTIMES } from '../images/index.ts';
import type { ExecutionJob, ExecutionResult, LiveListeners, NetworkLogEntry, OutputFile, OutputFilesRequest, OutputStream } from '../executor/index.ts';
import { scrubberFor, scrubText } from '../egress-proxy/index.ts';
import { checkRequestedPackages, packageRules, SecretBinding, type Ecosystem, type PolicyInfo } from '../policies/index.ts';
import type { Admission } from './admission.ts';
import { ApiError, badRequest } from './errors.ts';
import { decodedLength, type ExecuteRequest } from './execute-request.ts';
import type { Caller } from './identity/index.ts';
import { isolationFor, type IsolationChoice } from './isolation.ts';
import { LiveText } from './live-output.ts';

export type { NetworkLogEntry };

export type { PolicyInfo };

export interface ExecuteResponseData extends Omit<ExecutionResult, 'networkLogCapped' | 'outputFiles' | 'truncated'> {
  executionId: string;
  /** `files`: present only when the request asked for output files. */
  truncated: { stdout: boolean; stderr: boolean; files?: boolean };
  /** What `outputFiles` matched, when the request had any. */
  files?: OutputFile[];
  /** Present (true) only when the network log was capped. */
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
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  isolation: IsolationChoice;
  /** Registry host each ecosystem's install step uses (NPM_REGISTRY_HOST, the first of PYPI_HOSTS). */
  packageRegistries: Readonly<Record<Ecosystem, string>>;
  fileLimits: FileLimits;
}

export interface FileLimits {
  /** Most `files` a request may upload, and their total decoded bytes. */
  maxInputFiles: number;
  maxInputBytes: number;
  /** Most files, and total bytes, returned for `outputFiles`. */
  maxOutputFiles: number;
  maxOutputBytes: number;
}

/** Refuses, before any sandbox exists, uploads past the server's limits, naming the field and the variable that sets the limit. */
function checkFiles(request: ExecuteRequest, limits: FileLimits): void {
  if (request.files.length > limits.maxInputFiles) {
    throw badRequest(`Too many files: ${request.files.length}; the limit is ${limits.maxInputFiles} (EXEC_FILES_MAX_COUNT)`, [
      { field: 'files', message: `at most ${limits.maxInputFiles} files` },
    ]);
  }
  let total = 0;
  for (const [index, file] of request.files.entries()) {
    total += decodedLength(file.content);
    if (total > limits.maxInputBytes) {
      throw badRequest(`files too large: more than ${limits.maxInputBytes} bytes decoded in all (EXEC_FILES_MAX_BYTES), reached at files[${index}]`, [
        { field: 'files', message: `at most ${limits.maxInputBytes} bytes in all, decoded` },
        { field: `files[${index}].content`, message: 'passes the total size limit' },
      ]);
    }
  }
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

/** As stdout and stderr: a secret value the program wrote into a file leaves as its placeholder. */
function scrubFiles(files: OutputFile[], secrets: SecretBinding): OutputFile[] {
  if (secrets.size === 0) return files;
  const scrubber = scrubberFor(secrets);
  return files.map((file) => {
    const bytes = Buffer.from(file.content, 'base64');
    const scrubbed = scrubber.scrubBuffer(bytes);
    return scrubbed === bytes ? file : { path: file.path, size: scrubbed.length, content: scrubbed.toString('base64') };
  });
}

/** What a caller that streams an execution is told while it runs. */
export interface LiveExecution {
  /** The execution has its slot and is about to run. */
  started(executionId: string): void;
  /** Output as it arrives: whole characters, secret values replaced, within the output cap. */
  output(stream: OutputStream, text: string): void;
  /** Each network-log entry once the request it records is over. */
  network(entry: NetworkLogEntry): void;
}

export interface ExecuteOptions {
  /** Aborts the request while it still waits for a slot; with `live`, also kills the running program. */
  signal?: AbortSignal;
  /** Who holds the slot, for the per-caller concurrency cap. */
  holder?: string;
  secrets?: SecretBinding;
  /** Streams the run as it happens; the result is the same with or without it. */
  live?: LiveExecution;
}

/** The executor's live listeners for `live`, and `end` to let out the text still held once the run is over. */
function liveListeners(live: LiveExecution, secrets: SecretBinding): { listeners: LiveListeners; end(truncated: ExecutionResult['truncated']): void } {
  const texts: Record<OutputStream, LiveText> = {
    stdout: new LiveText(secrets, (text) => live.output('stdout', text)),
    stderr: new LiveText(secrets, (text) => live.output('stderr', text)),
  };
  return {
    listeners: { output: (stream, chunk) => texts[stream].write(chunk), network: (entry) => live.network(entry) },
    end(truncated) {
      texts.stdout.end(truncated.stdout);
      texts.stderr.end(truncated.stderr);
    },
  };
}

export class ExecutionService {
  constructor(private readonly options: ExecutionServiceOptions) {}

  /**
   * `signal` aborts a request still waiting in the queue (the client went
   * away); `holder` names the caller for the per-caller concurrency cap;
   * `secrets` reach the program as placeholders in its environment, and the
   * egress session with their values.
   */
  async execute(request: ExecuteRequest, caller: Caller, options: ExecuteOptions = {}): Promise<ExecuteResponseData> {
    const { signal, holder, secrets = SecretBinding.EMPTY, live } = options;
    const packages = checkPackages(request, caller);
    checkFiles(request, this.options.fileLimits);
    const { fileLimits } = this.options;
    const outputFiles: OutputFilesRequest | undefined =
      request.outputFiles.length === 0 ? undefined : { patterns: request.outputFiles, maxFiles: fileLimits.maxOutputFiles, maxBytes: fileLimits.maxOutputBytes };
    const isolation = isolationFor(caller.policy.policy.isolation, this.options.isolation);
    const executionId = randomUUID();
    const budgetMs = Math.min(request.timeoutMs ?? this.options.defaultTimeoutMs, this.options.maxTimeoutMs);
    // The request's timeout is its whole budget: the wait for a slot counts
    // against it and may take at most half, so an overloaded server still
    // answers within the timeout (plus sandbox start and teardown).
    const slot = await this.options.admission.acquire(budgetMs / 2, signal, holder);
    const timeoutMs = Math.max(1, budgetMs - slot.queuedMs);
    const streamed = live === undefined ? undefined : liveListeners(live, secrets);
    let result: ExecutionResult;
    try {
      live?.started(executionId);
      result = await this.options.executor.run({
        executionId,
        runtime: request.language,
        isolation,
        allowedBinaries: caller.policy.policy.allowedBinaries,
        code: request.code,
        args: request.args,
        env: { ...request.env, ...secrets.placeholderEnv() },
        stdin: request.stdin,
        ...(packages === null ? {} : { packages: packages.specs, packageRegistry: this.options.packageRegistries[packages.ecosystem] }),
        ...(request.files.length === 0 ? {} : { files: request.files }),
        ...(outputFiles === undefined ? {} : { outputFiles }),
        timeoutMs,
        // The executor opens the sandbox's egress session with it.
        policy: caller.policy,
        ...(secrets.size === 0 ? {} : { secrets }),
        // Only a streamed run dies with its caller: a plain one still answers whoever waits for it.
        ...(streamed === undefined ? {} : { live: streamed.listeners, ...(signal === undefined ? {} : { signal }) }),
      });
    } finally {
      slot.release();
    }
    streamed?.end(result.truncated);
    const { networkLogCapped, outputFiles: collected, ...run } = result;
    return {
      ...run,
      ...(collected === undefined ? {} : { files: scrubFiles(collected.files, secrets), truncated: { ...run.truncated, files: collected.truncated } }),
      // The last line of defence: a value the program got hold of anyway (reflected, guessed) leaves as its placeholder.
      stdout: scrubText(run.stdout, secrets, { truncated: run.truncated.stdout }),
      stderr: scrubText(run.stderr, secrets, { truncated: run.truncated.stderr }),
      executionId,
      ...(networkLogCapped ? { networkLogCapped: true } : {}),
      policyInfo: caller.policyInfo,
      queuedMs: slot.queuedMs,
    };
  }
}
