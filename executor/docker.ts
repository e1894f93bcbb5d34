/**
 * The only module that talks to Docker. Everything the executor needs from
 * the engine goes through ContainerClient, so the rest of the code is
 * written against a narrow, typed surface and every call can be traced to
 * the container it touched.
 */
import Docker from 'dockerode';
import type { Duplex } from 'node:stream';
import { DockerUnavailableError } from './errors.ts';

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
}

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

/** Turns socket-level failures into DockerUnavailableError; API errors pass through. */
function translate(error: unknown): unknown {
  const code = (error as DockerApiError | null)?.code;
  if (code && UNREACHABLE.has(code)) {
    return new DockerUnavailableError(`Docker engine unreachable (${code}); is dockerd running?`, { cause: error });
  }
  return error;
}

export class ContainerClient {
  private readonly docker: Docker;

  constructor(docker: Docker = new Docker()) {
    this.docker = docker;
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (error) {
      throw translate(error) instanceof DockerUnavailableError
        ? translate(error)
        : new DockerUnavailableError('Docker engine did not answer ping', { cause: error });
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

  /** The image's labels; a missing image is a 404 error, as from create(). */
  async imageLabels(image: string): Promise<Record<string, string>> {
    try {
      const info = await this.docker.getImage(image).inspect();
      return info.Config.Labels ?? {};
    } catch (error) {
      throw translate(error);
    }
  }

  async create(spec: ContainerSpec): Promise<SandboxContainer> {
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
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
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges'],
          PidsLimit: spec.pidsLimit,
          Memory: spec.memoryBytes,
          MemorySwap: spec.memoryBytes,
          NanoCpus: spec.nanoCpus,
          IpcMode: 'private',
          Ulimits: [
            { Name: 'nofile', Soft: spec.openFilesLimit, Hard: spec.openFilesLimit },
            { Name: 'fsize', Soft: spec.fileSizeLimitBytes, Hard: spec.fileSizeLimitBytes },
          ],
          Binds: spec.readOnlyBinds.map((b) => `${b.host}:${b.container}:ro`),
          // Output is captured through attach; the engine keeps no copy of it.
          LogConfig: { Type: 'none', Config: {} },
        },
      });
    } catch (error) {
      throw translate(error);
    }
    return new DockerSandboxContainer(container);
  }

  /** Removes every container carrying all the given labels; returns how many. */
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
    const found = await this.docker.listContainers({
      all: true,
      filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
    });
    return found.map((info) => info.Id);
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
