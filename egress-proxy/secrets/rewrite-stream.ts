/**
 * A Transform that rewrites a byte stream with a bounded look-behind: each
 * pass may rewrite only what it can see whole, and keeps back the tail that
 * could still be the start of a match, so a pattern split across chunks is
 * found once the next chunk arrives. Memory stays bounded by the chunk size
 * plus the window the rewriter keeps.
 */
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';

/**
 * One pass over the bytes not yet emitted. Returns the rewritten output for
 * `buffer[0, consumed)`; the rest is handed back, with the next chunk, on the
 * following pass. With `final` (end of stream) everything must be consumed.
 * May throw to fail the stream.
 */
export type Rewriter = (buffer: Buffer, final: boolean) => { output: Buffer[]; consumed: number };

export interface RewriteStreamOptions {
  /**
   * Emit nothing until this many input bytes were checked (or the stream
   * ended): a body that fails within them fails before any of it has gone
   * anywhere. 0 emits as soon as possible.
   */
  holdBytes?: number;
}

export class RewriteStream extends Transform {
  readonly #rewrite: Rewriter;
  readonly #holdBytes: number;
  #pending: Buffer = Buffer.alloc(0);
  #held: Buffer[] = [];
  #seen = 0;
  #released: boolean;

  constructor(rewrite: Rewriter, options: RewriteStreamOptions = {}) {
    super();
    this.#rewrite = rewrite;
    this.#holdBytes = options.holdBytes ?? 0;
    this.#released = this.#holdBytes <= 0;
  }

  override _transform(chunk: Buffer | string, encoding: BufferEncoding, callback: TransformCallback): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    this.#seen += bytes.length;
    const buffer = this.#pending.length === 0 ? bytes : Buffer.concat([this.#pending, bytes]);
    try {
      const { output, consumed } = this.#rewrite(buffer, false);
      this.#pending = buffer.subarray(consumed);
      this.#emit(output);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    try {
      const { output } = this.#rewrite(this.#pending, true);
      this.#pending = Buffer.alloc(0);
      this.#released = true;
      this.#emit(output);
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }

  #emit(output: Buffer[]): void {
    if (!this.#released) {
      this.#held.push(...output);
      if (this.#seen < this.#holdBytes) return;
      this.#released = true;
    }
    const parts = this.#held.length > 0 ? [...this.#held, ...output] : output;
    this.#held = [];
    // Pushed as they are: joining them would copy every byte of the body once more.
    for (const part of parts) if (part.length > 0) this.push(part);
  }
}

/** Rewrites a whole buffer with a rewriter, in one final pass. */
export function rewriteAll(rewrite: Rewriter, buffer: Buffer): Buffer {
  const { output } = rewrite(buffer, true);
  return output.length === 1 && output[0] !== undefined ? output[0] : Buffer.concat(output);
}
