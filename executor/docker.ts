/**
 * The only module that talks to Docker. Everything the executor (and the
 * tests and benchmarks) need from the engine goes through ContainerClient, a
 * narrow typed surface whose one implementation here wraps dockerode and
 * turns every engine error into one of ours (errors.ts), so no caller
 * inspects dockerode's error shapes.
 */
import Docker from 'dockerode';
import type { Duplex } from 'node:stream';
import type { ContainerSpec } from './container-spec.ts';
import { ContainerEngineError, DockerUnavailableError, ImageMissingError } from './errors.ts';

/** Empty, read-only and unusable: what a hidden directory looks like from inside. */
const MASK_TMPFS = 'ro,noexec,nosuid,nodev,size=4k,mode=0555';

export interface ContainerExit {
  statusCode: number;
  oomKilled: boolean;
}

export interface SandboxContainer {
  readonly id: string;
  /** Attaches stdin, stdout and stderr; must be called before start(). */
  attach(): Promise<Duplex>;
  start(): Promise<void>;
  /** Resolves when the container stops. */
  wait(): Promise<void>;
  kill(): Promise<void>;
  inspectExit(): Promise<ContainerExit>;
  remove(): Promise<void>;
}

interface DockerApiError {
  statusCode?: number;
  code?: string;
  message?: string;
}

function statusOf(error: unknown): number | undefined {
  return (error as DockerApiError | null)?.statusCode;
}

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

/**
 * Socket-level failures become DockerUnavailableError, the engine's answers
 * ContainerEngineError (with its status), anything else that reached the
 * engine call DockerUnavailableError too: the engine did not do what we asked.
 */
function translate(error: unknown): Error {
  if (error instanceof DockerUnavailableError || error instanceof ContainerEngineError || error instanceof ImageMissingError) return error;
  const { code, message } = (error as DockerApiError | null) ?? {};
  const status = statusOf(error);
  if (code && UNREACHABLE.has(code)) {
    return new DockerUnavailableError(`Docker engine unreachable (${code}); is dockerd running?`, { cause: error });
  }
  if (status !== undefined) return new ContainerEngineError(status, message ?? `Docker engine answered ${status}`, { cause: error });
  return new DockerUnavailableError(`Docker engine request failed: ${message ?? String(error)}`, { cause: error });
}

/** What the executor, the tests and the benchmarks ask of a container engine. */
export interface ContainerClient {
  /** Throws DockerUnavailableError when the engine does not answer. */
  ping(): Promise<void>;
  hasImage(image: string): Promise<boolean>;
  /** The image's labels; a missing image is ImageMissingError. */
  imageLabels(image: string): Promise<Record<string, string>>;
  /** Creates (does not start) a container to `spec`; a missing image is ImageMissingError. */
  create(spec: ContainerSpec): Promise<SandboxContainer>;
  /** Ids of every container (running or not) carrying all the given labels. */
  listLabelled(labels: Record<string, string>): Promise<string[]>;
  /** Removes every container carrying all the given labels; returns how many. */
  removeLabelled(labels: Record<string, string>): Promise<number>;
  /** SIGKILLs a container by id; one already stopped or gone is not an error. */
  kill(containerId: string): Promise<void>;
  /** Memory charged to a running container's cgroup, page cache that can be dropped left out (as `docker stats` counts it). */
  memoryUsage(containerId: string): Promise<number | undefined>;
  /** The OCI runtimes registered with the engine (`runc`, `runsc`, ...). */
  ociRuntimes(): Promise<string[]>;
  /** The engine's version and API version, for reports. */
  version(): Promise<{ server: string; api: string }>;
}

export interface DockerContainerClientOptions {
  /** The engine's Unix socket; default: DOCKER_HOST, as Docker's own tools read it. */
  socketPath?: string;
}

export class DockerContainerClient implements ContainerClient {
  private readonly docker: Docker;

  constructor(options: DockerContainerClientOptions = {}) {
    this.docker = options.socketPath === undefined ? new Docker() : new Docker({ socketPath: options.socketPath });
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (error) {
      const translated = translate(error);
      throw translated instanceof DockerUnavailableError ? translated : new DockerUnavailableError('Docker engine did not answer ping', { cause: error });
    }
  }

  async hasImage(image: string): Promise<boolean> {
    try {
      await this.docker.getImage(image).inspect();
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw translate(error);
    }
  }

  async imageLabels(image: string): Promise<Record<string, string>> {
    try {
      const info = await this.docker.getImage(image).inspect();
      return info.Config.Labels ?? {};
    } catch (error) {
      throw statusOf(error) === 404 ? new ImageMissingError(image) : translate(error);
    }
  }

  async create(spec: ContainerSpec): Promise<SandboxContainer> {
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        ...(spec.entrypoint === undefined ? {} : { Entrypoint: [...spec.entrypoint] }),
        User: spec.user,
        WorkingDir: '/tmp',
        Hostname: 'sandbox',
        Labels: spec.labels,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
        OpenStdin: true,
        StdinOnce: true,
        Tty: false,
        NetworkDisabled: true,
        HostConfig: {
          NetworkMode: 'none',
          // tini as PID 1 reaps orphans and forwards signals, so a fork-happy
          // program cannot fill the pids limit with zombies.
          Init: true,
          ReadonlyRootfs: true,
          Tmpfs: {
            ...Object.fromEntries(spec.masks.map((dir) => [dir, MASK_TMPFS])),
            '/tmp': `rw,noexec,nosuid,nodev,size=${spec.tmpfsBytes},mode=1777`,
          },
          Runtime: spec.ociRuntime,
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges', ...spec.securityOpt],
          PidsLimit: spec.pidsLimit,
          Memory: spec.memoryBytes,
          MemorySwap: spec.memoryBytes,
          NanoCpus: spec.nanoCpus,
          IpcMode: 'private',
          Ulimits: [
            { Name: 'nofile', Soft: spec.openFilesLimit, Hard: spec.openFilesLimit },
            { Name: 'fsize', Soft: spec.fileSizeLimitBytes, Hard: spec.fileSizeLimitBytes },
            // A crashing program leaves no core file (memory that may hold the job's secrets).
            { Name: 'core', Soft: 0, Hard: 0 },
            ...(spec.processLimit === undefined ? [] : [{ Name: 'nproc', Soft: spec.processLimit, Hard: spec.processLimit }]),
          ],
          Binds: spec.readOnlyBinds.map((b) => `${b.host}:${b.container}:ro`),
          // Output is captured through attach; the engine keeps no copy of it.
          LogConfig: { Type: 'none', Config: {} },
        },
      });
    } catch (error) {
      throw statusOf(error) === 404 ? new ImageMissingError(spec.image) : translate(error);
    }
    return new DockerSandboxContainer(container);
  }

  async removeLabelled(labels: Record<string, string>): Promise<number> {
    let found: Docker.ContainerInfo[];
    try {
      found = await this.docker.listContainers({
        all: true,
        filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
      });
    } catch (error) {
      throw translate(error);
    }
    await Promise.all(found.map((info) => removeContainer(this.docker.getContainer(info.Id))));
    return found.length;
  }

  async listLabelled(labels: Record<string, string>): Promise<string[]> {
    try {
      const found = await this.docker.listContainers({
        all: true,
        filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
      });
      return found.map((info) => info.Id);
    } catch (error) {
      throw translate(error);
    }
  }

  kill(containerId: string): Promise<void> {
    return new DockerSandboxContainer(this.docker.getContainer(containerId)).kill();
  }

  async memoryUsage(containerId: string): Promise<number | undefined> {
    let stats: { memory_stats: { usage?: number; stats?: Record<string, number> } };
    try {
      stats = await this.docker.getContainer(containerId).stats({ stream: false, 'one-shot': true } as { stream: false });
    } catch (error) {
      throw translate(error);
    }
    const m = stats.memory_stats;
    if (m.usage === undefined) return undefined;
    return m.usage - (m.stats?.total_inactive_file ?? m.stats?.inactive_file ?? 0);
  }

  async ociRuntimes(): Promise<string[]> {
    try {
      const info = (await this.docker.info()) as { Runtimes?: Record<string, unknown> };
      return Object.keys(info.Runtimes ?? {});
    } catch (error) {
      throw translate(error);
    }
  }

  async version(): Promise<{ server: string; api: string }> {
    try {
      const v = await this.docker.version();
      return { server: v.Version, api: v.ApiVersion };
    } catch (error) {
      throw translate(error);
    }
  }
}

/** How long removal keeps retrying a container the engine calls busy. */
const REMOVE_RETRY_MS = 10_000;

interface RemovableContainer {
  remove(options: { force: boolean; v: boolean }): Promise<unknown>;
}

/**
 * Force-removes a container and returns once the engine no longer has it.
 * A 409 is not "done": the engine also answers 409 when the container was
 * exiting as the forced kill arrived ("Could not kill running container
 * ..., cannot remove - Container ... is not running"), and then leaves it
 * in place; and "removal already in progress" can still end in a failed
 * removal. Either way, asking again settles it: success or 404 means gone.
 */
export async function removeContainer(container: RemovableContainer, retryMs = REMOVE_RETRY_MS): Promise<void> {
  const deadline = performance.now() + retryMs;
  for (let pauseMs = 25; ; pauseMs = Math.min(pauseMs * 2, 500)) {
    try {
      await container.remove({ force: true, v: true });
      return;
    } catch (error) {
      const status = statusOf(error);
      if (status === 404) return;
      if (status !== 409 || performance.now() + pauseMs > deadline) throw translate(error);
    }
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}

class DockerSandboxContainer implements SandboxContainer {
  constructor(private readonly container: Docker.Container) {}

  get id(): string {
    return this.container.id;
  }

  async attach(): Promise<Duplex> {
    try {
      const stream = await this.container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true });
      return stream as Duplex;
    } catch (error) {
      throw translate(error);
    }
  }

  async start(): Promise<void> {
    try {
      await this.container.start();
    } catch (error) {
      throw translate(error);
    }
  }

  async wait(): Promise<void> {
    try {
      await this.container.wait();
    } catch (error) {
      throw translate(error);
    }
  }

  async kill(): Promise<void> {
    try {
      await this.container.kill({ signal: 'SIGKILL' });
    } catch (error) {
      // 304/409: not running any more, which is what we wanted; 404: gone.
      const status = statusOf(error);
      if (status !== 304 && status !== 404 && status !== 409) throw translate(error);
    }
  }

  async inspectExit(): Promise<ContainerExit> {
    try {
      const info = await this.container.inspect();
      return { statusCode: info.State.ExitCode, oomKilled: info.State.OOMKilled };
    } catch (error) {
      throw translate(error);
    }
  }

  remove(): Promise<void> {
    return removeContainer(this.container);
  }
}
