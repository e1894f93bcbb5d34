/**
 * What the executor is asked to run and what it answers: the contract
 * between the server and the executor, apart from how a run is carried out.
 */
import type { CompiledPolicy, SecretBinding } from '../policies/index.ts';
import type { Isolation, Runtime } from './container-spec.ts';
import type { NetworkLogEntry } from './egress.ts';
import type { CollectedFiles, InputFile, OutputFilesRequest } from './job-files.ts';

export interface ExecutionJob {
  executionId: string;
  runtime: Runtime;
  /** The tier the sandbox runs under (the server picks it: the deployment's, or refuses what a policy requires and it lacks). */
  isolation: Isolation;
  code: string;
  args: string[];
  env: Record<string, string>;
  stdin: string;
  timeoutMs: number;
  /** What the sandbox's egress session enforces. */
  policy: CompiledPolicy;
  /**
   * The execution's secrets, handed to the egress session and nowhere else:
   * `env` holds their placeholders, never a value.
   */
  secrets?: SecretBinding;
  /** The caller's policy `allowedBinaries`: every tool of the image it does not name is hidden (absent means none). */
  allowedBinaries?: readonly string[];
  /** Registry specs the agent installs before the program runs (already checked against the policy). */
  packages?: string[];
  /** Registry host the install step uses (the one the proxy's package rules govern). */
  packageRegistry?: string;
  /** Written into the working directory before the program starts (paths already checked). */
  files?: InputFile[];
  /** Collected from the working directory after the program exits. */
  outputFiles?: OutputFilesRequest;
  /** A live view of the run for a caller that streams it; without it the run is only seen in its result. */
  live?: LiveListeners;
  /** Aborting it kills the program and removes its sandbox; the run then fails with ExecutionAbortedError. */
  signal?: AbortSignal;
}

export type OutputStream = 'stdout' | 'stderr';

/** Called as the run goes; each must not throw (one that does is logged and the run goes on). */
export interface LiveListeners {
  /** The program's bytes as they arrive, within the output cap, agent records stripped. */
  output?(stream: OutputStream, chunk: Buffer): void;
  /** Each network-log entry once complete (not reported by a proxy that runs as its own service). */
  network?(entry: NetworkLogEntry): void;
}

export interface ExecutionResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  oomKilled: boolean;
  truncated: { stdout: boolean; stderr: boolean };
  durationMs: number;
  /** The tier the program ran under. */
  isolation: Isolation;
  /** Every request the program made through the egress proxy, in order. */
  networkLog: NetworkLogEntry[];
  /** True when requests were left out of networkLog at the proxy's cap. */
  networkLogCapped: boolean;
  /**
   * Present when the job asked for output files: what the agent collected
   * (none when the program did not exit on its own, e.g. at its timeout).
   */
  outputFiles?: CollectedFiles;
}
