/**
 * Runs one program in one fresh container and removes it afterwards,
 * whatever happened: created, attached, started, waited on with a wall-clock
 * limit, collected, removed (in `finally`).
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { ContainerClient, ContainerSpec, SandboxContainer } from './docker.ts';
import { CA_CERT_FILE, SANDBOX_EGRESS_DIR } from './egress.ts';
import { AgentRecordFilter, newRecordToken, type ProgramExit } from './agent-records.ts';
import { ImageMissingError } from './errors.ts';
import { CappedSink, DockerStreamDemuxer } from './output.ts';
import { exposedTools, toolMasks, toolsFromLabels, type ImageTools } from './tools.ts';

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
  /**
   * The CA certificate (PEM) the egress proxy's interception chains to. It
   * is put in the sandbox's egress directory before the sandbox starts, so a
   * runtime the agent starts ahead of its job trusts it from the outset; the
   * egress session, once open, writes the same file. Public, and the same
   * for every sandbox: it gives a pooled sandbox no route out.
   */
  egressCaCert?: () => Promise<string>;
}

export const LABEL_MANAGED = 'sandbox-egress.managed';
export const LABEL_INSTANCE = 'sandbox-egress.instance';
export const LABEL_EXECUTION = 'sandbox-egress.execution';
/** Carried by containers made ahead of time for the warm pool (value: the runtime). */
export const LABEL_POOL = 'sandbox-egress.pool';

const SANDBOX_USER = '1000:1000';
/** After the container stops, how long to wait for the last output bytes to arrive. */
const OUTPUT_DRAIN_MS = 2000;
/** After the agent reported a SIGKILL, how long the container gets to stop before it is killed. */
const EXIT_GRACE_MS = 2000;

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

/** Settles with `promise`, or with 'timeout' after `ms`; the timer never outlives the race. */
async function raceTimer<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A sandbox created and started with the full lockdown, its agent waiting
 * for the job header on stdin. It runs at most one job (Executor.runIn) and
 * is then removed; a sandbox that stopped before getting a job is only fit
 * for Executor.discard.
 */
export class ReadySandbox {
  readonly stdout: CappedSink;
  readonly stderr: CappedSink;
  /** Resolves when the attach stream ends: all output has arrived. */
  readonly outputDone: Promise<void>;
  readonly #stdoutRecords: AgentRecordFilter;
  readonly #stderrRecords: AgentRecordFilter;
  #streamOpen = true;
  /** The image's tools this sandbox shows; every other one is hidden (set by prepare). */
  exposedTools: readonly string[] = [];
  #exited: Promise<void> = Promise.resolve();
  #alive = true;
  #claimed = false;

  constructor(
    readonly id: string,
    readonly runtime: Runtime,
    readonly container: SandboxContainer,
    readonly egressDir: string,
    readonly stream: Duplex,
    outputLimitBytes: number,
  ) {
    this.stdout = new CappedSink(outputLimitBytes);
    this.stderr = new CappedSink(outputLimitBytes);
    // A write to a stream the engine closed fails there; the exit path reports it.
    stream.on('error', () => undefined);
    this.#stdoutRecords = new AgentRecordFilter(this.stdout);
    this.#stderrRecords = new AgentRecordFilter(this.stderr);
    const demuxer = new DockerStreamDemuxer(this.#stdoutRecords, this.#stderrRecords);
    stream.on('data', (chunk: Buffer) => demuxer.push(chunk));
    this.outputDone = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    }).then(() => {
      this.#streamOpen = false;
      this.#stdoutRecords.end();
      this.#stderrRecords.end();
    });
  }

  /**
   * Asks the agent for in-band records under `token` (see agent-records.ts);
   * resolves with the program's exit once both streams have reported it,
   * that is once both have delivered everything the program wrote.
   */
  expectRecords(token: string): Promise<ProgramExit> {
    this.#stdoutRecords.expect(token);
    this.#stderrRecords.expect(token);
    return Promise.all([this.#stdoutRecords.exited, this.#stderrRecords.exited]).then(([, exit]) => exit);
  }

  /** True once the agent has reported that it holds the job. */
  get jobStarted(): boolean {
    return this.#stderrRecords.started;
  }

  /** The program's exit as the agent reported it on both streams, if it has. */
  get reportedExit(): ProgramExit | undefined {
    return this.#stdoutRecords.exit && this.#stderrRecords.exit;
  }

  /** Resolves when the sandbox can no longer take a job: its container stopped or its stream closed. */
  get lost(): Promise<void> {
    return Promise.race([this.#exited, this.outputDone]);
  }

  get containerId(): string {
    return this.container.id;
  }

  /** False once the container has stopped or its attach stream closed. */
  get alive(): boolean {
    return this.#alive && this.#streamOpen && !this.stream.destroyed;
  }

  /** Resolves when the container stops (an engine error counts as stopped). */
  get exited(): Promise<void> {
    return this.#exited;
  }

  watchExit(wait: Promise<void>): void {
    this.#exited = wait.catch(() => undefined).then(() => {
      this.#alive = false;
    });
  }

  claim(): void {
    if (this.#claimed) throw new Error(`sandbox ${this.id} has already run a job`);
    this.#claimed = true;
  }
}


export class Executor {
  readonly #removals = new Set<Promise<void>>();
  readonly #imageTools = new Map<string, Promise<ImageTools>>();

  constructor(private readonly options: ExecutorOptions) {}

  get labels(): Record<string, string> {
    return { [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: this.options.instanceId };
  }

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

  /** Removes containers an earlier run of this server left behind. */
  async reapOrphans(): Promise<number> {
    const removed = await this.options.client.removeLabelled(this.labels);
    if (removed > 0) this.options.logger.warn({ removed }, 'removed containers left by an earlier run');
    return removed;
  }

  /** The one container spec every sandbox gets, made on demand or ahead of time. */
  containerSpec(runtime: Runtime, sandboxId: string, egressDir: string, labels: Record<string, string>, masks: readonly string[]): ContainerSpec {
    const { limits } = this.options;
    return {
      image: this.options.images[runtime],
      name: `sandbox-${sandboxId}`,
      labels: { ...this.labels, ...labels },
      user: SANDBOX_USER,
      memoryBytes: limits.memoryBytes,
      nanoCpus: limits.nanoCpus,
      pidsLimit: limits.pidsLimit,
      tmpfsBytes: limits.tmpfsBytes,
      fileSizeLimitBytes: limits.tmpfsBytes,
      openFilesLimit: limits.openFilesLimit,
      readOnlyBinds: [{ host: egressDir, container: SANDBOX_EGRESS_DIR }],
      masks,
    };
  }

  /**
   * Creates, attaches and starts a locked-down sandbox whose agent then
   * waits for its job header. Its egress directory is mounted but empty:
   * there is no route out until runIn opens the job's egress session there.
   */
  async prepare(runtime: Runtime, labels: Record<string, string> = {}, allowedBinaries: readonly string[] = []): Promise<ReadySandbox> {
    const { client, limits, logger } = this.options;
    // Short on purpose: the proxy socket inside must fit in sun_path (108 bytes).
    const sandboxId = randomUUID().replace(/-/g, '').slice(0, 16);
    const egressDir = join(this.options.sandboxesDir, sandboxId);
    await mkdir(egressDir, { recursive: true, mode: 0o755 });
    await this.#placeCaCert(egressDir);

    let container: SandboxContainer | undefined;
    let stream: Duplex | undefined;
    try {
      const tools = await this.#toolsOf(runtime);
      const spec = this.containerSpec(runtime, sandboxId, egressDir, labels, toolMasks(tools, allowedBinaries));
      try {
        container = await client.create(spec);
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) throw new ImageMissingError(spec.image);
        throw error;
      }
      logger.info({ sandboxId, containerId: container.id, ...labels }, 'container created');
      stream = await container.attach();
      const sandbox = new ReadySandbox(sandboxId, runtime, container, egressDir, stream, limits.outputLimitBytes);
      sandbox.exposedTools = exposedTools(tools, allowedBinaries);
      await container.start();
      // Only after start: waiting on a created container returns at once.
      sandbox.watchExit(container.wait());
      return sandbox;
    } catch (error) {
      stream?.destroy();
      await container?.remove().catch(() => undefined);
      await rm(egressDir, { recursive: true, force: true });
      throw error;
    }
  }

  /** Without it (the proxy not answering yet) the agent starts the program's runtime once the session is open. */
  async #placeCaCert(egressDir: string): Promise<void> {
    if (!this.options.egressCaCert) return;
    try {
      await writeFile(join(egressDir, CA_CERT_FILE), await this.options.egressCaCert(), { mode: 0o644 });
    } catch (error) {
      this.options.logger.warn({ err: String(error) }, 'no CA certificate for the sandbox before its start');
    }
  }

  /** The image's tools a container made for `allowedBinaries` shows; a pooled one shows none. */
  async exposedToolsFor(runtime: Runtime, allowedBinaries: readonly string[]): Promise<string[]> {
    return exposedTools(await this.#toolsOf(runtime), allowedBinaries);
  }

  /**
   * Runs one job in a ready sandbox: opens its egress session, hands the
   * agent the job, waits with the wall-clock limit (counted from here, not
   * from when the sandbox was made), collects the outcome. The sandbox is
   * then removed whatever happened; removal finishes after the answer
   * (see settle()). A sandbox that died before its agent got the job (an
   * engine restart, a kill from outside) never ran the program, so the job
   * runs again on the cold path.
   */
  async runIn(sandbox: ReadySandbox, job: ExecutionJob): Promise<ExecutionResult> {
    const wanted = await this.exposedToolsFor(sandbox.runtime, job.allowedBinaries ?? []);
    if (wanted.join() !== sandbox.exposedTools.join()) {
      // Tools are hidden when the container is made, so a sandbox made for
      // another policy (a pooled one hides them all) cannot serve this job.
      this.discard(sandbox);
      return this.run(job);
    }
    const assignedAt = performance.now();
    const outcome = await this.#runOnce(sandbox, job, true);
    if (outcome !== 'not-started') return outcome;
    this.options.logger.warn({ executionId: job.executionId, sandboxId: sandbox.id, containerId: sandbox.containerId }, 'sandbox died before its job; running it cold');
    return this.run({ ...job, timeoutMs: Math.max(1, job.timeoutMs - Math.round(performance.now() - assignedAt)) });
  }

  /** Cold path: a sandbox made for this job alone. */
  async run(job: ExecutionJob): Promise<ExecutionResult> {
    const sandbox = await this.prepare(job.runtime, { [LABEL_EXECUTION]: job.executionId }, job.allowedBinaries ?? []);
    return this.#runOnce(sandbox, job, false);
  }

  /**
   * The answer comes as soon as the agent has reported the program's exit
   * on both streams (agent-records.ts), without waiting for the engine to
   * see the container stop; the container is killed and removed after the
   * answer. The engine decides when there is no report (the agent died, the
   * timeout) and for a SIGKILL, which may be the kernel's OOM killer: only
   * the engine can tell.
   */
  #runOnce(sandbox: ReadySandbox, job: ExecutionJob, retryable: false): Promise<ExecutionResult>;
  #runOnce(sandbox: ReadySandbox, job: ExecutionJob, retryable: true): Promise<ExecutionResult | 'not-started'>;
  async #runOnce(sandbox: ReadySandbox, job: ExecutionJob, retryable: boolean): Promise<ExecutionResult | 'not-started'> {
    sandbox.claim();
    const { logger } = this.options;
    logger.info({ executionId: job.executionId, sandboxId: sandbox.id, containerId: sandbox.containerId }, 'sandbox assigned');
    let lease: EgressLease | undefined;
    try {
      if (retryable && !sandbox.alive) return 'not-started';
      if (job.openEgress) lease = await job.openEgress(sandbox.egressDir);
      const token = newRecordToken();
      const reported = sandbox.expectRecords(token);
      const startedAt = performance.now();
      const header = JSON.stringify({ v: 1, token, code: job.code, args: job.args, env: job.env, ...(job.packages?.length ? { packages: job.packages, registry: job.packageRegistry } : {}) });
      sandbox.stream.write(`${header}\n`);
      if (job.stdin) sandbox.stream.write(job.stdin);
      sandbox.stream.end();

      const first = await raceTimer(Promise.race([reported, sandbox.exited.then(() => undefined)]), job.timeoutMs);
      const timedOut = first === 'timeout';
      let exit = timedOut ? undefined : first;
      if (exit !== undefined && exit.signal !== 'SIGKILL') {
        return { ...this.#output(sandbox), ...exit, timedOut: false, oomKilled: false, durationMs: Math.round(performance.now() - startedAt) };
      }
      const stopped = exit === undefined && !timedOut;
      if (!stopped && (timedOut || (await raceTimer(sandbox.exited, EXIT_GRACE_MS)) === 'timeout')) {
        await sandbox.container.kill();
        await sandbox.exited;
      }
      const durationMs = Math.round(performance.now() - startedAt);
      await raceTimer(sandbox.outputDone, OUTPUT_DRAIN_MS);
      if (retryable && stopped && !sandbox.jobStarted) return 'not-started';
      exit ??= sandbox.reportedExit;
      const engine = await sandbox.container.inspectExit();
      const status = timedOut ? { code: null, signal: 'SIGKILL' } : (exit ?? splitStatus(engine.statusCode));
      return { ...this.#output(sandbox), ...status, timedOut, oomKilled: engine.oomKilled, durationMs };
    } finally {
      sandbox.stream.destroy();
      // The lease hands back the network log, so it closes before the answer.
      await lease?.close().catch((err: unknown) => {
        logger.warn({ executionId: job.executionId, err: String(err) }, 'egress session close failed');
      });
      this.discard(sandbox);
    }
  }

  #output(sandbox: ReadySandbox): Pick<ExecutionResult, 'stdout' | 'stderr' | 'truncated'> {
    return {
      stdout: sandbox.stdout.text(),
      stderr: sandbox.stderr.text(),
      truncated: { stdout: sandbox.stdout.truncated, stderr: sandbox.stderr.truncated },
    };
  }

  /**
   * Removes a sandbox (used or not) in the background; settle() waits for
   * every removal still under way, so nothing outlives a clean shutdown.
   */
  discard(sandbox: ReadySandbox): void {
    sandbox.stream.destroy();
    const removal = Promise.allSettled([sandbox.container.remove()]).then(async ([outcome]) => {
      await rm(sandbox.egressDir, { recursive: true, force: true }).catch(() => undefined);
      if (outcome?.status === 'rejected') {
        this.options.logger.warn({ sandboxId: sandbox.id, err: String(outcome.reason) }, 'sandbox cleanup failed');
      }
    });
    this.#removals.add(removal);
    void removal.finally(() => this.#removals.delete(removal));
  }

  /** Resolves when every sandbox handed to discard() (or finished by runIn) is gone. */
  async settle(): Promise<void> {
    while (this.#removals.size > 0) await Promise.all([...this.#removals]);
  }
}
