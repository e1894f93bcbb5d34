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
  #exited: Promise<void> = Promise.resolve();
  #alive = true;
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
