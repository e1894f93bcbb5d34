/**
 * The one container spec every sandbox gets (DESIGN §7), cold or pooled, and
 * what the image tests run under: the lockdown is decided here, and the
 * engine client only translates it for its engine.
 */
import { SANDBOX_EGRESS_DIR } from './egress.ts';
import { SANDBOX_SECCOMP_JSON } from './seccomp.ts';

/** A runtime's name as the runtime registry (images/) spells it: the executor only looks its image up by it. */
export type Runtime = string;

/**
 * An isolation tier: how far a sandbox's program is from the host's kernel.
 * `runc` shares it (namespaces, cgroups, our seccomp profile); `gvisor`
 * runs the program on gVisor's own kernel in user space (the engine's
 * `runsc` runtime), at a cost in start-up and system-call speed.
 */
export type Isolation = 'runc' | 'gvisor';
export const ISOLATIONS: readonly Isolation[] = ['runc', 'gvisor'];

interface IsolationTier {
  /** The OCI runtime the engine must have registered under this name. */
  ociRuntime: string;
  /** Our seccomp profile, for a tier whose program talks to the host's kernel. */
  seccomp: boolean;
  /**
   * The pids cgroup under this tier for a program limit of `limit`. gVisor's
   * own host threads (its kernel, file proxy, and a host thread per running
   * task under its ptrace platform) are charged to the sandbox's cgroup, so
   * there the cgroup only caps gVisor as a whole and RLIMIT_NPROC, which
   * gVisor enforces per sandbox, holds the program to `limit` tasks.
   */
  pidsCgroup(limit: number): number;
  /** RLIMIT_NPROC, where it means "tasks of this sandbox" (under runc it counts every process of the host uid, so it is not set). */
  processLimit(limit: number): number | undefined;
}

export const ISOLATION_TIERS: Readonly<Record<Isolation, IsolationTier>> = {
  runc: { ociRuntime: 'runc', seccomp: true, pidsCgroup: (limit) => limit, processLimit: () => undefined },
  gvisor: { ociRuntime: 'runsc', seccomp: false, pidsCgroup: (limit) => limit * 8 + 512, processLimit: (limit) => limit },
};

/** The tier whose engine runtime is `ociRuntime`, if any. */
export function isolationOf(ociRuntime: string): Isolation | undefined {
  return ISOLATIONS.find((tier) => ISOLATION_TIERS[tier].ociRuntime === ociRuntime);
}

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

/** The uid (and gid) every sandboxed program runs as: the only one, beside root, that may reach its egress directory. */
export const SANDBOX_UID = 1000;
const SANDBOX_USER = `${SANDBOX_UID}:${SANDBOX_UID}`;

export interface ContainerSpec {
  image: string;
  /** The engine's OCI runtime (`runc`, `runsc`). */
  ociRuntime: string;
  /** Security options beyond no-new-privileges (our seccomp profile under runc). */
  securityOpt: readonly string[];
  /** RLIMIT_NPROC, when the tier makes it per sandbox. */
  processLimit?: number;
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
  /** Default: runc. */
  isolation?: Isolation;
}

export function sandboxContainerSpec(input: SandboxSpecInput): ContainerSpec {
  const { limits } = input;
  const tier = ISOLATION_TIERS[input.isolation ?? 'runc'];
  const processLimit = tier.processLimit(limits.pidsLimit);
  return {
    image: input.image,
    ociRuntime: tier.ociRuntime,
    securityOpt: tier.seccomp ? [`seccomp=${SANDBOX_SECCOMP_JSON}`] : [],
    ...(processLimit === undefined ? {} : { processLimit }),
    name: `sandbox-${input.sandboxId}`,
    labels: input.labels,
    user: SANDBOX_USER,
    memoryBytes: limits.memoryBytes,
    nanoCpus: limits.nanoCpus,
    pidsLimit: tier.pidsCgroup(limits.pidsLimit),
    tmpfsBytes: limits.tmpfsBytes,
    fileSizeLimitBytes: limits.tmpfsBytes,
    openFilesLimit: limits.openFilesLimit,
    readOnlyBinds: [{ host: input.egressDir, container: SANDBOX_EGRESS_DIR }],
    masks: input.masks,
  };
}
