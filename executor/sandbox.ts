/**
 * A sandbox between its start and its one job: the container, its attach
 * stream, the output sinks and the agent's in-band records.
 */
import type { Duplex } from 'node:stream';
import { AgentRecordFilter, type ProgramExit } from './agent-records.ts';
import type { SandboxContainer } from './docker.ts';
import type { CollectedFiles } from './job-files.ts';
import { CappedSink, DockerStreamDemuxer } from './output.ts';
import type { Isolation, Runtime } from './container-spec.ts';

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
  /** The engine's word that the container stopped, asked for only when an execution needs it. */
  #engineExit: Promise<void> | undefined;
  #stopped = false;
  #claimed = false;

  constructor(
    readonly id: string,
    readonly runtime: Runtime,
    readonly isolation: Isolation,
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
   * `maxFilesBytes` admits a files record of up to that size on stdout.
   */
  expectRecords(token: string, maxFilesBytes = 0): Promise<ProgramExit> {
    this.#stdoutRecords.expect(token, maxFilesBytes);
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

  /** The output files the agent collected after the program exited, if the job asked for some and they arrived. */
  get reportedFiles(): CollectedFiles | undefined {
    return this.#stdoutRecords.files;
  }

  /**
   * Resolves when the sandbox can no longer take a job. Its attach stream
   * carries the output of every process in the container, its init
   * included, so the stream ends when the container stops (or the engine
   * drops it): no engine call is needed to notice.
   */
  get lost(): Promise<void> {
    return this.outputDone;
  }

  get containerId(): string {
    return this.container.id;
  }

  /** False once the attach stream closed (the container stopped) or the engine said it stopped. */
  get alive(): boolean {
    return !this.#stopped && this.#streamOpen && !this.stream.destroyed;
  }

  /**
   * Resolves when the engine says the container stopped (an engine error
   * counts as stopped). The engine is asked on first use, not for every
   * sandbox: an execution whose agent reported a clean exit never needs it.
   */
  get exited(): Promise<void> {
    this.#engineExit ??= this.container
      .wait()
      .catch(() => undefined)
      .then(() => {
        this.#stopped = true;
      });
    return this.#engineExit;
  }

  claim(): void {
    if (this.#claimed) throw new Error(`sandbox ${this.id} has already run a job`);
    this.#claimed = true;
  }
}
