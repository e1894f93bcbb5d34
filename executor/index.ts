export { ContainerClient } from './docker.ts';
export type { ContainerSpec, SandboxContainer } from './docker.ts';
export { DockerUnavailableError, ImageMissingError } from './errors.ts';
export {
  DEFAULT_LIMITS,
  Executor,
  LABEL_EXECUTION,
  LABEL_INSTANCE,
  LABEL_MANAGED,
  LABEL_POOL,
  ReadySandbox,
} from './executor.ts';
export { WarmPool } from './pool.ts';
export type { WarmPoolOptions, WarmPoolStats } from './pool.ts';
export type {
  EgressLease,
  ExecutionJob,
  ExecutionResult,
  ExecutorOptions,
  Logger,
  OpenEgress,
  Runtime,
  SandboxLimits,
} from './executor.ts';
export * from './egress.ts';
