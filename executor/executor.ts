/**
 * Runs one program in one fresh container and removes it afterwards,
 * whatever happened: created, attached, started, waited on with a wall-clock
 * limit, collected, removed (in `finally`).
 */
import { mkdir, rm } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { ContainerClient, SandboxContainer } from './docker.ts';
import { SANDBOX_EGRESS_DIR } from './egress.ts';
import { ImageMissingError } from './errors.ts';
import { CappedSink, DockerStreamDemuxer } from './output.ts';
import { toolMasks, toolsFromLabels, type ImageTools } from './tools.ts';

export type Runtime = 'node' | 'python';

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

/** An egress route opened for one sandbox; closed by the executor after the container ends. */
export interface EgressLease {
  close(): Promise<void>;
}

/**
 * Opens the sandbox's egress route in `hostDir`, the host directory mounted
 * read-only at SANDBOX_EGRESS_DIR inside the container.
 */
export type OpenEgress = (hostDir: string) => Promise<EgressLease>;

export interface ExecutionJob {
  executionId: string;
  runtime: Runtime;
  code: string;
  args: string[];
  env: Record<string, string>;
  stdin: string;
  timeoutMs: number;
  openEgress?: OpenEgress;
  /** The caller's policy `allowedBinaries`: every tool of the image it does not name is hidden (absent means none). */
  allowedBinaries?: readonly string[];
  /** Registry specs the agent installs before the program runs (already checked against the policy). */
  packages?: string[];
  /** Registry host the install step uses (the one the proxy's package rules govern). */
  packageRegistry?: string;
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
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ExecutorOptions {
  client: ContainerClient;
  images: Record<Runtime, string>;
  /** Parent of the per-sandbox egress directories. */
  sandboxesDir: string;
  /** Distinguishes this server's containers from another's on the same engine. */
  instanceId: string;
  limits: SandboxLimits;
  logger: Logger;
}

export const LABEL_MANAGED = 'sandbox-egress.managed';
export const LABEL_INSTANCE = 'sandbox-egress.instance';
export const LABEL_EXECUTION = 'sandbox-egress.execution';

const SANDBOX_USER = '1000:1000';
/** After the container stops, how long to wait for the last output bytes to arrive. */
const OUTPUT_DRAIN_MS = 2000;

const SIGNAL_NAMES = new Map<number, string>(
  Object.entries(osConstants.signals).map(([name, num]) => [num, name]),
);

/**
 * The agent exits 128+N when the program died of signal N (as shells do),
 * so a program that itself exits with 137 is reported as SIGKILL.
 */
function splitStatus(status: number): { code: number | null; signal: string | null } {
  const signal = status > 128 ? SIGNAL_NAMES.get(status - 128) : undefined;
  return signal ? { code: null, signal } : { code: status, signal: null };
}

function sleep(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => {
    setTimeout(() => resolve('timeout'), ms).unref();
  });
}

export class Executor {
  readonly #imageTools = new Map<string, Promise<ImageTools>>();

  constructor(private readonly options: ExecutorOptions) {}

  /** The image's hideable tools, read once per image from its labels. */
  #toolsOf(runtime: Runtime): Promise<ImageTools> {
    const image = this.options.images[runtime];
    let tools = this.#imageTools.get(image);
    if (tools === undefined) {
      tools = this.options.client.imageLabels(image).then(
        (labels) => toolsFromLabels(image, labels),
        (error: unknown) => {
          throw (error as { statusCode?: number }).statusCode === 404 ? new ImageMissingError(image) : error;
        },
      );
      this.#imageTools.set(image, tools);
      tools.catch(() => this.#imageTools.delete(image));
    }
    return tools;
  }

  get labels(): Record<string, string> {
    return { [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: this.options.instanceId };
  }

  /** Removes containers an earlier run of this server left behind. */
  async reapOrphans(): Promise<number> {
    const removed = await this.options.client.removeLabelled(this.labels);
    if (removed > 0) this.options.logger.warn({ removed }, 'removed containers left by an earlier run');
    return removed;
  }

  async run(job: ExecutionJob): Promise<ExecutionResult> {
    const { client, limits, logger } = this.options;
    const image = this.options.images[job.runtime];
    // Short on purpose: the proxy socket inside must fit in sun_path (108 bytes).
    const egressDir = join(this.options.sandboxesDir, job.executionId.replace(/-/g, '').slice(0, 16));
    await mkdir(egressDir, { recursive: true, mode: 0o755 });

    let container: SandboxContainer | undefined;
    let stream: Duplex | undefined;
    let lease: EgressLease | undefined;
    try {
      try {
        container = await client.create({
          image,
          name: `sandbox-${job.executionId}`,
          labels: { ...this.labels, [LABEL_EXECUTION]: job.executionId },
          user: SANDBOX_USER,
          memoryBytes: limits.memoryBytes,
          nanoCpus: limits.nanoCpus,
          pidsLimit: limits.pidsLimit,
          tmpfsBytes: limits.tmpfsBytes,
          fileSizeLimitBytes: limits.tmpfsBytes,
          openFilesLimit: limits.openFilesLimit,
          readOnlyBinds: [{ host: egressDir, container: SANDBOX_EGRESS_DIR }],
          masks: toolMasks(await this.#toolsOf(job.runtime), job.allowedBinaries ?? []),
        });
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) throw new ImageMissingError(image);
        throw error;
      }
      logger.info({ executionId: job.executionId, containerId: container.id }, 'container created');

      const stdout = new CappedSink(limits.outputLimitBytes);
      const stderr = new CappedSink(limits.outputLimitBytes);
      const demuxer = new DockerStreamDemuxer(stdout, stderr);
      stream = await container.attach();
      stream.on('data', (chunk: Buffer) => demuxer.push(chunk));
      const outputDone = new Promise<void>((resolve) => {
        stream!.once('end', resolve);
        stream!.once('close', resolve);
        stream!.once('error', () => resolve());
      });

      if (job.openEgress) lease = await job.openEgress(egressDir);

      await container.start();
      const startedAt = performance.now();
      const header = JSON.stringify({ v: 1, code: job.code, args: job.args, env: job.env, ...(job.packages?.length ? { packages: job.packages, registry: job.packageRegistry } : {}) });
      stream.write(`${header}\n`);
      if (job.stdin) stream.write(job.stdin);
      stream.end();

      const exited = container.wait();
      let timedOut = false;
      if ((await Promise.race([exited, sleep(job.timeoutMs)])) === 'timeout') {
        timedOut = true;
        await container.kill();
        await exited;
      }
      const durationMs = Math.round(performance.now() - startedAt);
      await Promise.race([outputDone, sleep(OUTPUT_DRAIN_MS)]);
      const exit = await container.inspectExit();
      const status = timedOut ? { code: null, signal: 'SIGKILL' } : splitStatus(exit.statusCode);

      return {
        stdout: stdout.text(),
        stderr: stderr.text(),
        ...status,
        timedOut,
        oomKilled: exit.oomKilled,
        truncated: { stdout: stdout.truncated, stderr: stderr.truncated },
        durationMs,
      };
    } finally {
      stream?.destroy();
      const cleanup = await Promise.allSettled([
        lease?.close(),
        container?.remove(),
      ]);
      await rm(egressDir, { recursive: true, force: true });
      for (const outcome of cleanup) {
        if (outcome.status === 'rejected') {
          logger.warn({ executionId: job.executionId, err: String(outcome.reason) }, 'sandbox cleanup failed');
        }
      }
    }
  }
}
