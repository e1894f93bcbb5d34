/**
 * One output stream of a running program, turned into text as it arrives
 * for a streamed response: only whole UTF-8 characters leave (a character
 * split across writes waits for its last byte), and secret values are
 * replaced by their placeholders as in the final result. With secrets bound,
 * the last bytes that could still grow into a value (or one of its
 * encodings) are held back until more output or the end arrives.
 */
import { StringDecoder } from 'node:string_decoder';
import { scrubberFor, scrubText, type Scrubber } from '../egress-proxy/index.ts';
import type { SecretBinding } from '../policies/index.ts';

export class LiveText {
  readonly #decoder = new StringDecoder('utf8');
  readonly #scrubber: Scrubber | null;
  /** Bytes the scrubber has not passed yet: they may be the start of a value. */
  #pending: Buffer = Buffer.alloc(0);

  constructor(
    private readonly secrets: SecretBinding,
    private readonly emit: (text: string) => void,
  ) {
    this.#scrubber = secrets.size === 0 ? null : scrubberFor(secrets);
  }

  write(chunk: Buffer): void {
    if (this.#scrubber === null) {
      this.#send(this.#decoder.write(chunk));
      return;
    }
    const buffer = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const { output, consumed } = this.#scrubber.rewrite(buffer, false);
    // A copy: the held bytes must not pin the whole chunk they came in.
    this.#pending = Buffer.from(buffer.subarray(consumed));
    this.#send(output.map((piece) => this.#decoder.write(piece)).join(''));
  }

  /**
   * The stream is over: what was held back leaves. `truncated` (the output
   * cap cut the stream) masks a value's first bytes at the very end, as the
   * final result does.
   */
  end(truncated: boolean): void {
    let tail = '';
    if (this.#scrubber !== null && this.#pending.length > 0) {
      tail = this.#scrubber.rewrite(this.#pending, true).output.map((piece) => this.#decoder.write(piece)).join('');
      this.#pending = Buffer.alloc(0);
    }
    tail += this.#decoder.end();
    if (truncated && this.#scrubber !== null) tail = scrubText(tail, this.secrets, { truncated });
    this.#send(tail);
  }

  #send(text: string): void {
    if (text.length > 0) this.emit(text);
  }
}
