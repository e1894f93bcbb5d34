/**
 * Runs one program in one fresh container and removes it afterwards,
 * whatever happened: created, attached, started, handed its egress session
 * and its job, waited on with a wall-clock limit, collected, removed (in
 * `finally`).
 */
import { randomUUID } from 'node:crypto';
import { chmod, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { newRecordToken, type ProgramExit } from './agent-records.ts';
import { LABEL_EXECUTION, LABEL_INSTANCE, LABEL_MANAGED, SANDBOX_UID, sandboxContainerSpec, type Isolation, type Runtime, type SandboxLimits } from './container-spec.ts';
import type { ContainerClient, SandboxContainer } from './docker.ts';
import { CA_CERT_FILE, PROXY_SOCKET_FILE, type EgressPort, type EgressSession, type NetworkLog, type NetworkLogEntry } from './egress.ts';
import { ExecutionAbortedError } from './errors.ts';
import { maxFilesRecordBytes, outputFilesMatcher } from './job-files.ts';
import type { ExecutionJob, ExecutionResult } from './job.ts';
import { RemovalQueue } from './removals.ts';
import { ReadySandbox } from './sandbox.ts';
import { exposedTools, toolMasks, toolsFromLabels, type ImageTools } from './tools.ts';

export type { ExecutionJob, ExecutionResult, LiveListeners, OutputStream } from './job.ts';

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ExecutorOptions {
  client: ContainerClient;
  /** Every sandbox's only route out: a session per job, opened when the job reaches its sandbox. */
  egress: EgressPort;
  images: Record<Runtime, string>;
  /** Parent of the per-sandbox egress directories. */
  sandboxesDir: string;
  /** Distinguishes this server's containers from another's on the same engine. */
  instanceId: string;
  limits: SandboxLimits;
  logger: Logger;
}

/** What one job in one sandbox came to; `jobTaken` is false when the container stopped before its agent took the job. */
interface SandboxRun {
  result: ExecutionResult;
  jobTaken: boolean;
}

/** A program's outcome before the network log is added. */
type ProgramOutcome = Omit<ExecutionResult, 'networkLog' | 'networkLogCapped' | 'isolation'>;

/** After the container stops, how long to wait for the last output bytes to arrive. */
const OUTPUT_DRAIN_MS = 2000;
/** After the agent reported a SIGKILL, how long the container gets to stop before it is killed. */
const EXIT_GRACE_MS = 2000;
const NO_NETWORK_LOG: NetworkLog = { entries: [], capped: false };
/**
 * Container removals under way at once. The engine serialises much of a
 * removal anyway; more at once only takes CPU from running programs.
 */
const REMOVALS_AT_ONCE = 2;

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

/** Resolves with 'aborted' when `signal` aborts; `dispose` stops listening. */
function whenAborted(signal: AbortSignal | undefined): { aborted: Promise<'aborted'>; dispose: () => void } {
  if (signal === undefined) return { aborted: new Promise(() => undefined), dispose: () => undefined };
  let onAbort: () => void = () => undefined;
  const aborted = new Promise<'aborted'>((resolve) => {
    onAbort = () => resolve('aborted');
    if (signal.aborted) resolve('aborted');
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return { aborted, dispose: () => signal.removeEventListener('abort', onAbort) };
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

export class Executor {
  readonly #removals = new RemovalQueue({ concurrency: REMOVALS_AT_ONCE });
  readonly #imageTools = new Map<string, Promise<ImageTools>>();
  #warnedUnrestricted = false;

  constructor(private readonly options: ExecutorOptions) {}

  get labels(): Record<string, string> {
    return { [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: this.options.instanceId };
  }

  /** The image's hideable tools, read once per image from its labels. */
  #toolsOf(runtime: Runtime): Promise<ImageTools> {
    const image = this.options.images[runtime];
    let tools = this.#imageTools.get(image);
    if (tools === undefined) {
      tools = this.options.client.imageLabels(image).then((labels) => toolsFromLabels(image, labels));
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

  /**
   * Creates, attaches and starts a locked-down sandbox whose agent then
   * waits for its job header. Its egress directory holds the CA certificate
   * but no socket: there is no route out until a job opens its session there.
   */
  async prepare(runtime: Runtime, isolation: Isolation, labels: Record<string, string> = {}, allowedBinaries: readonly string[] = []): Promise<ReadySandbox> {
    const { client, limits, logger } = this.options;
    // Short on purpose: the proxy socket inside must fit in sun_path (108 bytes).
    const sandboxId = randomUUID().replace(/-/g, '').slice(0, 16);
    const egressDir = join(this.options.sandboxesDir, sandboxId);
    await mkdir(egressDir, { recursive: true, mode: 0o755 });
    await this.#placeCaCert(egressDir);
    await this.#restrictToSandbox(egressDir);

    let container: SandboxContainer | undefined;
    let stream: Duplex | undefined;
    try {
      const tools = await this.#toolsOf(runtime);
      const spec = sandboxContainerSpec({
        image: this.options.images[runtime],
        sandboxId,
        egressDir,
        labels: { ...this.labels, ...labels },
        masks: toolMasks(tools, allowedBinaries),
        limits,
        isolation,
      });
      container = await client.create(spec);
      logger.info({ sandboxId, containerId: container.id, ...labels }, 'container created');
      stream = await container.attach();
      const sandbox = new ReadySandbox(sandboxId, runtime, isolation, container, egressDir, stream, limits.outputLimitBytes);
      sandbox.exposedTools = exposedTools(tools, allowedBinaries);
      await container.start();
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
    try {
      await writeFile(join(egressDir, CA_CERT_FILE), await this.options.egress.caCertificate(), { mode: 0o644 });
    } catch (error) {
      this.options.logger.warn({ err: String(error) }, 'no CA certificate for the sandbox before its start');
    }
  }

  /**
   * The proxy socket is created in this directory and anyone who can reach
   * it rides the sandbox's egress session: only the sandbox's uid (and root,
   * which the in-process proxy runs as) may enter it. A server that is not
   * root cannot hand the directory over and keeps it as it is (warned once).
   */
  async #restrictToSandbox(egressDir: string): Promise<void> {
    try {
      await chown(egressDir, SANDBOX_UID, SANDBOX_UID);
      await chmod(egressDir, 0o700);
    } catch (error) {
      if (this.#warnedUnrestricted) return;
      this.#warnedUnrestricted = true;
      this.options.logger.warn({ err: String(error) }, 'cannot give sandbox egress directories to the sandbox uid (run as root to): other local users can reach their proxy sockets');
    }
  }

  /** The image's tools a container made for `allowedBinaries` shows; a pooled one shows none. */
  async exposedToolsFor(runtime: Runtime, allowedBinaries: readonly string[]): Promise<string[]> {
    return exposedTools(await this.#toolsOf(runtime), allowedBinaries);
  }

  /**
   * Runs one job in a ready sandbox that fits it (the pool decides which
   * do), with the wall-clock limit counted from here, not from when the
   * sandbox was made. The sandbox is removed whatever happened; removal
   * finishes after the answer (see settle()). A sandbox that died before its
   * agent took the job (an engine restart, a kill from outside) never ran
   * the program, so the job runs again on the cold path.
   */
  async runIn(sandbox: ReadySandbox, job: ExecutionJob): Promise<ExecutionResult> {
    const assignedAt = performance.now();
    if (sandbox.alive) {
      const run = await this.#runOnce(sandbox, job);
      if (run.jobTaken) return run.result;
    } else {
      this.discard(sandbox);
    }
    this.options.logger.warn({ executionId: job.executionId, sandboxId: sandbox.id, containerId: sandbox.containerId }, 'sandbox died before its job; running it cold');
    return this.run({ ...job, timeoutMs: Math.max(1, job.timeoutMs - Math.round(performance.now() - assignedAt)) });
  }

  /** Cold path: a sandbox made for this job alone. */
  async run(job: ExecutionJob): Promise<ExecutionResult> {
    const sandbox = await this.prepare(job.runtime, job.isolation, { [LABEL_EXECUTION]: job.executionId }, job.allowedBinaries ?? []);
    return (await this.#runOnce(sandbox, job)).result;
  }

  /**
   * Opens the job's egress session in the sandbox's directory (a pooled
   * sandbox has had no route out until now), runs the job, and closes the
   * session before answering: closing hands back the network log.
   */
  async #runOnce(sandbox: ReadySandbox, job: ExecutionJob): Promise<SandboxRun> {
    sandbox.claim();
    const { logger } = this.options;
    logger.info({ executionId: job.executionId, sandboxId: sandbox.id, containerId: sandbox.containerId }, 'sandbox assigned');
    try {
      if (job.signal?.aborted === true) throw new ExecutionAbortedError(job.executionId);
      const { live } = job;
      const session = await this.options.egress.openSession({
        executionId: job.executionId,
        socketPath: join(sandbox.egressDir, PROXY_SOCKET_FILE),
        context: job.policy,
        ...(job.secrets === undefined ? {} : { secrets: job.secrets }),
        ...(live?.network === undefined ? {} : { onEntry: (entry: NetworkLogEntry) => this.#tell(job, () => live.network?.(entry)) }),
      });
      let network = NO_NETWORK_LOG;
      let outcome: ProgramOutcome;
      try {
        outcome = await this.#runProgram(sandbox, job);
      } finally {
        sandbox.stream.destroy();
        network = await this.#closeSession(session, job.executionId);
      }
      return {
        result: { ...outcome, isolation: sandbox.isolation, networkLog: network.entries, networkLogCapped: network.capped },
        // Stopped without the agent's word that it held the job: the program never ran.
        jobTaken: outcome.timedOut || sandbox.jobStarted,
      };
    } finally {
      this.discard(sandbox);
    }
  }

  /** A session that fails to close costs the execution its network log, never its answer. */
  async #closeSession(session: EgressSession, executionId: string): Promise<NetworkLog> {
    try {
      return await session.close();
    } catch (error) {
      this.options.logger.warn({ executionId, err: String(error) }, 'egress session close failed');
      return NO_NETWORK_LOG;
    }
  }

  /**
   * Hands the agent the job and waits. The answer comes as soon as the
   * agent has reported the program's exit on both streams
   * (agent-records.ts), without waiting for the engine to see the container
   * stop; the container is killed and removed after the answer. The engine
   * decides when there is no report (the agent died, the timeout) and for a
   * SIGKILL, which may be the kernel's OOM killer: only the engine can tell.
   */
  async #runProgram(sandbox: ReadySandbox, job: ExecutionJob): Promise<ProgramOutcome> {
    const token = newRecordToken();
    const wanted = job.outputFiles !== undefined && job.outputFiles.patterns.length > 0 ? job.outputFiles : undefined;
    const reported = sandbox.expectRecords(token, wanted === undefined ? 0 : maxFilesRecordBytes(wanted));
    const { live } = job;
    if (live?.output !== undefined) {
      sandbox.stdout.listen((chunk) => this.#tell(job, () => live.output?.('stdout', chunk)));
      sandbox.stderr.listen((chunk) => this.#tell(job, () => live.output?.('stderr', chunk)));
    }
    const startedAt = performance.now();
    const header = JSON.stringify({
      v: 1,
      token,
      code: job.code,
      args: job.args,
      env: job.env,
      ...(job.packages?.length ? { packages: job.packages, registry: job.packageRegistry } : {}),
      ...(job.files?.length ? { files: job.files } : {}),
      ...(wanted === undefined ? {} : { outputFiles: { match: outputFilesMatcher(wanted.patterns), maxFiles: wanted.maxFiles, maxBytes: wanted.maxBytes } }),
    });
    sandbox.stream.write(`${header}\n`);
    if (job.stdin) sandbox.stream.write(job.stdin);
    sandbox.stream.end();

    // The stream ends when the container stops, so racing it needs no
    // engine call; the records, when they came, came before its end.
    const abort = whenAborted(job.signal);
    const first = await raceTimer(Promise.race([reported, sandbox.outputDone.then(() => sandbox.reportedExit), abort.aborted]), job.timeoutMs).finally(abort.dispose);
    if (first === 'aborted') {
      await sandbox.container.kill();
      throw new ExecutionAbortedError(job.executionId);
    }
    const timedOut = first === 'timeout';
    let exit: ProgramExit | undefined = timedOut ? undefined : first;
    if (exit !== undefined && exit.signal !== 'SIGKILL') {
      return { ...this.#output(sandbox, job), ...exit, timedOut: false, oomKilled: false, durationMs: Math.round(performance.now() - startedAt) };
    }
    if (timedOut || (await raceTimer(sandbox.exited, EXIT_GRACE_MS)) === 'timeout') {
      await sandbox.container.kill();
      await sandbox.exited;
    }
    const durationMs = Math.round(performance.now() - startedAt);
    await raceTimer(sandbox.outputDone, OUTPUT_DRAIN_MS);
    exit ??= sandbox.reportedExit;
    const engine = await sandbox.container.inspectExit();
    const status = timedOut ? { code: null, signal: 'SIGKILL' } : (exit ?? splitStatus(engine.statusCode));
    return { ...this.#output(sandbox, job), ...status, timedOut, oomKilled: engine.oomKilled, durationMs };
  }

  /** A live listener's failure is the listener's own: logged, never the run's. */
  #tell(job: ExecutionJob, call: () => void): void {
    try {
      call();
    } catch (error) {
      this.options.logger.warn({ executionId: job.executionId, err: String(error) }, 'live listener failed');
    }
  }

  #output(sandbox: ReadySandbox, job: ExecutionJob): Pick<ExecutionResult, 'stdout' | 'stderr' | 'truncated' | 'outputFiles'> {
    return {
      stdout: sandbox.stdout.text(),
      stderr: sandbox.stderr.text(),
      truncated: { stdout: sandbox.stdout.truncated, stderr: sandbox.stderr.truncated },
      ...(job.outputFiles?.patterns.length ? { outputFiles: sandbox.reportedFiles ?? { files: [], truncated: false } } : {}),
    };
  }

  /**
   * Removes a sandbox (used or not) in the background, after the answer
   * and a few at a time (RemovalQueue); settle() waits for every removal
   * queued or under way, so nothing outlives a clean shutdown.
   */
  discard(sandbox: ReadySandbox): void {
    sandbox.stream.destroy();
    this.#removals.add(async () => {
      const [outcome] = await Promise.allSettled([sandbox.container.remove()]);
      await rm(sandbox.egressDir, { recursive: true, force: true }).catch(() => undefined);
      if (outcome?.status === 'rejected') {
        this.options.logger.warn({ sandboxId: sandbox.id, err: String(outcome.reason) }, 'sandbox cleanup failed');
      }
    });
  }

  /** Containers queued for removal or being removed. */
  get removing(): number {
    return this.#removals.size;
  }

  /** Resolves when every sandbox handed to discard() (or finished by runIn) is gone. */
  settle(): Promise<void> {
    return this.#removals.drain();
  }
}
