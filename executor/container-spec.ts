/**
 * The one container spec every sandbox gets (DESIGN §7), cold or pooled, and
 * what the image tests run under: the lockdown is decided here, and the
 * engine client only translates it for its engine.
 */
import { SANDBOX_EGRESS_DIR } from './egress.ts';

/** A runtime's name as the runtime registry (images/) spells it: the executor only looks its image up by it. */
export type Runtime = string;

export interface SandboxLimits {
  memoryBytes: number;
  outputLimitBytes: number;
  pidsLimit: number;
  nanoCpus: number;
  tmpfsBytes: number;
  openFilesLimit: number;
}

export const DEFAULT_LIMITS: SandboxLimits = {
  memoryBytes: 256 * 1024 * 1024,
  outputLimitBytes: 1024 * 1024,
  pidsLimit: 128,
  nanoCpus: 1_000_000_000,
  tmpfsBytes: 64 * 1024 * 1024,
  openFilesLimit: 256,
};

export const LABEL_MANAGED = 'sandbox-egress.managed';
export const LABEL_INSTANCE = 'sandbox-egress.instance';
export const LABEL_EXECUTION = 'sandbox-egress.execution';
/** Carried by containers made ahead of time for the warm pool (value: the runtime). */
export const LABEL_POOL = 'sandbox-egress.pool';

const SANDBOX_USER = '1000:1000';

export interface ContainerSpec {
  image: string;
  name: string;
  labels: Record<string, string>;
  user: string;
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  tmpfsBytes: number;
  fileSizeLimitBytes: number;
  openFilesLimit: number;
  /** host path → container path, always mounted read-only */
  readOnlyBinds: Array<{ host: string; container: string }>;
  /** Directories of the image hidden under an empty read-only tmpfs (tools the policy does not allow). */
  masks: readonly string[];
  /** Replaces the image's entrypoint (the agent); sandboxes never set it, baselines measuring the bare runtime do. */
  entrypoint?: readonly string[];
}

export interface SandboxSpecInput {
  image: string;
  /** Names the container `sandbox-<id>`, as the egress directory is named. */
  sandboxId: string;
  /** Host directory mounted read-only at SANDBOX_EGRESS_DIR: the only way out, once a session listens there. */
  egressDir: string;
  labels: Record<string, string>;
  /** Image directories to hide (toolMasks). */
  masks: readonly string[];
  limits: SandboxLimits;
}

export function sandboxContainerSpec(input: SandboxSpecInput): ContainerSpec {
  const { limits } = input;
  return {
    image: input.image,
    name: `sandbox-${input.sandboxId}`,
    labels: input.labels,
    user: SANDBOX_USER,
    memoryBytes: limits.memoryBytes,
    nanoCpus: limits.nanoCpus,
    pidsLimit: limits.pidsLimit,
    tmpfsBytes: limits.tmpfsBytes,
    fileSizeLimitBytes: limits.tmpfsBytes,
    openFilesLimit: limits.openFilesLimit,
    readOnlyBinds: [{ host: input.egressDir, container: SANDBOX_EGRESS_DIR }],
    masks: input.masks,
  };
}
