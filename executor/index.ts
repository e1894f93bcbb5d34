export { DockerContainerClient } from './docker.ts';
export type { ContainerClient, ContainerExit, SandboxContainer } from './docker.ts';
export { ContainerEngineError, DockerUnavailableError, ImageMissingError } from './errors.ts';
export {
  DEFAULT_LIMITS,
  LABEL_EXECUTION,
  LABEL_INSTANCE,
  LABEL_MANAGED,
  LABEL_POOL,
  sandboxContainerSpec,
} from './container-spec.ts';
export type { ContainerSpec, Runtime, SandboxLimits, SandboxSpecInput } from './container-spec.ts';
export { Executor } from './executor.ts';
export type { ExecutionJob, ExecutionResult, ExecutorOptions, Logger } from './executor.ts';
export { ReadySandbox } from './sandbox.ts';
export { WarmPool } from './pool.ts';
export type { WarmPoolOptions, WarmPoolStats } from './pool.ts';
export { DockerStreamDemuxer } from './output.ts';
export { toolMasks, toolsFromLabels } from './tools.ts';
export type { OutputSink } from './output.ts';
export * from './egress.ts';
