/**
 * The records an image's agent writes into its container's output for the
 * executor (protocol at the top of images/node/agent/agent.js and
 * images/python/agent/agent.py):
 *
 *   \0sandbox:<token>:started\n                 on stderr, once the agent has the job
 *   \0sandbox:<token>:files:<length>\n<length bytes of JSON>
 *                                                on stdout, after the program exits and before the
 *                                                exit record, when the job asked for output files
 *   \0sandbox:<token>:exit:<code>:<signal>\n    on stdout and on stderr, after the program exits
 *
 * `<token>` is a random value sent in the job header, which the agent reads
 * before the program exists, so program output cannot forge a record (and a
 * program that learnt the token could only end its own run, which it can do
 * anyway). The filter below finds a record anywhere in the stream, even
 * split across chunks, strips it, and drops everything after the exit
 * record: output of processes the program left behind.
 *
 * The exit record is on both streams because the engine copies them over
 * separate pipes: it tells the executor that stream has delivered
 * everything the program wrote to it, so the answer needs no word from the
 * engine that the container stopped.
 *
 * The files record is length-prefixed, so its payload (file contents) is
 * read as bytes and never searched for records; the agent writes it after
 * it has ended every process the program left behind, so nothing can
 * interleave with it. Its length is capped by what the job asked for.
 */
import { randomBytes } from 'node:crypto';
import type { CollectedFiles, OutputFile } from './job-files.ts';
import type { OutputSink } from './output.ts';

export interface ProgramExit {
  code: number | null;
  signal: string | null;
}

/** A fresh per-job token: 128 random bits, in hex. */
export function newRecordToken(): string {
  return randomBytes(16).toString('hex');
}

/** A record is short; anything longer after a matching prefix is not one. */
const MAX_RECORD_BYTES = 64;
const NEWLINE = 0x0a;
const NUL = 0x00;
const EXIT_RECORD = /^exit:(\d{0,10}):([A-Z0-9]{0,16})$/;
const FILES_RECORD = /^files:(\d{1,12})$/;

function isOutputFile(value: unknown): value is OutputFile {
  if (value === null || typeof value !== 'object') return false;
  const file = value as Record<string, unknown>;
  return typeof file.path === 'string' && typeof file.content === 'string' && typeof file.size === 'number' && Number.isSafeInteger(file.size);
}

/** The payload of a files record, or undefined when it is not one (a broken agent). */
function parseCollectedFiles(payload: Buffer): CollectedFiles | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const { files, truncated } = value as Record<string, unknown>;
  if (!Array.isArray(files) || !files.every(isOutputFile) || typeof truncated !== 'boolean') return undefined;
  return { files: files.map(({ path, size, content }) => ({ path, size, content })), truncated };
}

/**
 * Passes one output stream on to `sink` minus the agent's records, and
 * reports them. Until expect() is called (a pooled sandbox waiting for its
 * job) everything passes through.
 */
export class AgentRecordFilter implements OutputSink {
  #prefix: Buffer | undefined;
  /** Bytes held back because they may be the start of a record split across chunks. */
  #carry: Buffer = Buffer.alloc(0);
  /** The body of a record being read, once its prefix has been seen. */
  #record: Buffer | undefined;
  #exit: ProgramExit | undefined;
  /** Largest files payload accepted; 0 when the job asked for none. */
  #maxFilesBytes = 0;
  /** A files payload being read: the bytes so far and how many are due. */
  #payload: { chunks: Buffer[]; received: number; length: number } | undefined;
  #files: CollectedFiles | undefined;
  /** The exit record was seen (or a broken one): nothing after it is output. */
  #done = false;
  #started = false;
  #onExit: ((exit: ProgramExit) => void) | undefined;
  /** Resolves with the program's exit, if the agent reports it on this stream. */
  readonly exited: Promise<ProgramExit>;

  constructor(private readonly sink: OutputSink) {
    this.exited = new Promise((resolve) => {
      this.#onExit = resolve;
    });
  }

  /** True once the agent has said it has the job. */
  get started(): boolean {
    return this.#started;
  }

  get exit(): ProgramExit | undefined {
    return this.#exit;
  }

  /** The output files the agent reported, when the job asked for some and the record arrived whole. */
  get files(): CollectedFiles | undefined {
    return this.#files;
  }

  /** `maxFilesBytes`: accept a files record of up to that many payload bytes (0: none expected). */
  expect(token: string, maxFilesBytes = 0): void {
    this.#prefix = Buffer.from(`\0sandbox:${token}:`, 'latin1');
    this.#maxFilesBytes = maxFilesBytes;
  }

  write(chunk: Buffer): void {
    if (this.#done) return;
    if (this.#prefix === undefined) {
      this.sink.write(chunk);
      return;
    }
    if (this.#payload !== undefined) {
      this.#readPayload(chunk);
      return;
    }
    if (this.#record !== undefined) {
      this.#readRecord(chunk);
      return;
    }
    const data = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    this.#carry = Buffer.alloc(0);
    const at = data.indexOf(this.#prefix);
    if (at !== -1) {
      if (at > 0) this.sink.write(data.subarray(0, at));
      this.#record = Buffer.alloc(0);
      this.#readRecord(data.subarray(at + this.#prefix.length));
      return;
    }
    const held = partialPrefixAtEnd(data, this.#prefix);
    if (held < data.length) this.sink.write(data.subarray(0, data.length - held));
    if (held > 0) this.#carry = Buffer.from(data.subarray(data.length - held));
  }

  /** The stream ended: bytes held back were output after all. */
  end(): void {
    if (!this.#done && this.#carry.length > 0) this.sink.write(this.#carry);
    this.#carry = Buffer.alloc(0);
  }

  #readRecord(bytes: Buffer): void {
    const record = Buffer.concat([this.#record ?? Buffer.alloc(0), bytes]);
    const newline = record.indexOf(NEWLINE);
    if (newline === -1) {
      // Only the agent knows the token, so an overlong record is a broken
      // agent: report nothing and let the engine's exit status stand.
      if (record.length > MAX_RECORD_BYTES) this.#done = true;
      else this.#record = record;
      return;
    }
    this.#record = undefined;
    this.#done = true;
    const body = record.subarray(0, newline).toString('latin1');
    const rest = record.subarray(newline + 1);
    if (body === 'started') {
      this.#done = false;
      this.#started = true;
      if (rest.length > 0) this.write(rest);
      return;
    }
    const files = FILES_RECORD.exec(body);
    if (files !== null) {
      const length = Number(files[1]);
      // Over the cap (or not asked for): a broken agent, whose output ends here.
      if (length > this.#maxFilesBytes || this.#files !== undefined) return;
      this.#done = false;
      this.#payload = { chunks: [], received: 0, length };
      this.#readPayload(rest);
      return;
    }
    const match = EXIT_RECORD.exec(body);
    if (match === null) return;
    const [, code = '', signal = ''] = match;
    this.#exit = { code: code === '' ? null : Number(code), signal: signal === '' ? null : signal };
    this.#onExit?.(this.#exit);
  }

  #readPayload(bytes: Buffer): void {
    const payload = this.#payload;
    if (payload === undefined) return;
    const take = Math.min(bytes.length, payload.length - payload.received);
    // Copied: the chunk's buffer belongs to the stream.
    if (take > 0) payload.chunks.push(Buffer.from(bytes.subarray(0, take)));
    payload.received += take;
    if (payload.received < payload.length) return;
    this.#payload = undefined;
    const collected = parseCollectedFiles(Buffer.concat(payload.chunks, payload.length));
    if (collected === undefined) {
      this.#done = true;
      return;
    }
    this.#files = collected;
    if (bytes.length > take) this.write(bytes.subarray(take));
  }
}

/**
 * How many bytes at the end of `data` are a proper prefix of `prefix`. The
 * prefix has a NUL only as its first byte, so the candidate starts at the
 * last NUL within reach.
 */
function partialPrefixAtEnd(data: Buffer, prefix: Buffer): number {
  const nul = data.lastIndexOf(NUL);
  if (nul === -1 || nul < data.length - (prefix.length - 1)) return 0;
  const tail = data.subarray(nul);
  return prefix.subarray(0, tail.length).equals(tail) ? tail.length : 0;
}
