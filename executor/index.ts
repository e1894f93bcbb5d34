export { DockerContainerClient } from './docker.ts';
export type { ContainerClient, ContainerExit, SandboxContainer } from './docker.ts';
export { ContainerEngineError, DockerUnavailableError, ExecutionAbortedError, ImageMissingError } from './errors.ts';
export {
  DEFAULT_LIMITS,
  LABEL_EXECUTION,
  LABEL_INSTANCE,
  LABEL_MANAGED,
  LABEL_POOL,
  ISOLATION_TIERS,
  ISOLATIONS,
  isolationOf,
  SANDBOX_UID,
  sandboxContainerSpec,
} from './container-spec.ts';
export type { ContainerSpec, Isolation, Runtime, SandboxLimits, SandboxSpecInput } from './container-spec.ts';
export { DENIED_SYSCALLS, sandboxSeccompProfile } from './seccomp.ts';
export { Executor } from './executor.ts';
export type { ExecutionJob, ExecutionResult, ExecutorOptions, LiveListeners, Logger, OutputStream } from './executor.ts';
export { ReadySandbox } from './sandbox.ts';
export { conflictingPaths, globSource, outputFilesMatcher, relativePathProblem, SANDBOX_WORK_DIR } from './job-files.ts';
export type { CollectedFiles, InputFile, OutputFile, OutputFilesRequest } from './job-files.ts';
export { poolKey, WarmPool } from './pool.ts';
export type { PoolKey, WarmPoolOptions, WarmPoolStats } from './pool.ts';
export { DockerStreamDemuxer } from './output.ts';
export { toolMasks, toolsFromLabels } from './tools.ts';
export type { OutputSink } from './output.ts';
export * from './egress.ts';
