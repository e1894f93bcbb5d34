/**
 * Decodes a buffered response body (Content-Encoding) for a reader that
 * needs its meaning, bounded so a small compressed body cannot expand into
 * unbounded memory. The client still receives the bytes exactly as sent.
 * Decompression runs on libuv's thread pool, not on the event loop every
 * sandbox shares.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const gunzip = promisify(zlib.gunzip);
const inflate = promisify(zlib.inflate);
const brotliDecompress = promisify(zlib.brotliDecompress);

/** The decoded body, or null when the encoding is unknown, broken, or decodes past `maxBytes`. */
export async function decodeBody(raw: Buffer, contentEncoding: string | undefined, maxBytes: number): Promise<Buffer | null> {
  const codings = (contentEncoding ?? '')
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  let body = raw;
  try {
    // Codings apply in the order listed, so they come off in reverse.
    for (const coding of codings.reverse()) {
      const options = { maxOutputLength: maxBytes };
      switch (coding) {
        case 'gzip':
        case 'x-gzip':
          body = await gunzip(body, options);
          break;
        case 'deflate':
          body = await inflate(body, options);
          break;
        case 'br':
          body = await brotliDecompress(body, options);
          break;
        default:
          return null;
      }
    }
  } catch {
    return null;
  }
  return body.length > maxBytes ? null : body;
}
