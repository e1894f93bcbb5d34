/** Stream helpers for tests of transforms that must work whatever the chunking. */
import { Readable, Writable } from 'node:stream';
import type { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Runs `chunks` through `transforms` in order and returns everything that came out. */
export async function collect(chunks: readonly Buffer[], transforms: Transform[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    ...(transforms as [Transform]),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}

/** Cuts `buffer` into chunks of the given sizes, cycling through them. */
export function split(buffer: Buffer, sizes: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < buffer.length; i += 1) {
    const size = sizes[i % sizes.length] ?? 1;
    chunks.push(buffer.subarray(at, at + size));
    at += size;
  }
  return chunks;
}
