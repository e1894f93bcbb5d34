/**
 * What to do with a response body so no secret value reaches the sandbox.
 *
 * An identity body is scrubbed as it streams. A gzip, deflate or br body is
 * decoded and scrubbed, and reaches the sandbox decoded: drop
 * Content-Encoding. Either way the length changes, so drop Content-Length and
 * send the body chunked. A body in an encoding the proxy cannot read is
 * refused (502) when the request carried a secret or went to a host a secret
 * is bound to: those are the only upstreams that know a value. Other such
 * bodies pass unread.
 */
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import { canonicalHost } from '../../policies/index.ts';
import type { SecretBinding } from '../../policies/index.ts';
import type { SecretRefusal } from './refusal.ts';
import { scrubberFor } from './scrub.ts';

export interface ResponseContext {
  /** Destination host and port of the request this answers. */
  host: string;
  port: number;
  contentEncoding: string | undefined;
  /** Whether a secret was substituted into the request. */
  carriedSecret: boolean;
}

export type ResponsePlan =
  /** Nothing to scrub: forward as received. */
  | { kind: 'pass' }
  /**
   * Pipe the body through `createTransforms()` in order, drop the headers in
   * `dropHeaders`, scrub the rest with `scrubHeaders`.
   */
  | { kind: 'scrub'; decodes: string[]; dropHeaders: string[]; createTransforms: () => Transform[] }
  | { kind: 'refuse'; refusal: SecretRefusal };

const DECODERS: Record<string, () => Transform> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

export function planResponseScrub(binding: SecretBinding, context: ResponseContext): ResponsePlan {
  const scrubber = scrubberFor(binding);
  if (scrubber.empty) return { kind: 'pass' };
  const codings = (context.contentEncoding ?? '')
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
  const knowsValue = context.carriedSecret || binding.boundTo(context.host, context.port);
  const unknown = codings.find((coding) => !Object.hasOwn(DECODERS, coding));
  if (unknown !== undefined) {
    if (!knowsValue) return { kind: 'pass' };
    const host = canonicalHost(context.host) ?? context.host;
    return {
      kind: 'refuse',
      refusal: {
        status: 502,
        code: 'secret-unscrubbable',
        reason: `Response from ${host} has Content-Encoding ${JSON.stringify(unknown)}, which the proxy cannot scrub of secrets`,
      },
    };
  }
  if (codings.length > 0 && !knowsValue) return { kind: 'pass' };
  // Codings apply in the order listed, so they come off in reverse.
  const decodes = [...codings].reverse();
  return {
    kind: 'scrub',
    decodes,
    dropHeaders: decodes.length > 0 ? ['content-length', 'content-encoding'] : ['content-length'],
    createTransforms: () => [...decodes.map((coding) => (DECODERS[coding])()), scrubber.createStream()],
  };
}

/** Scrubs response header values (all of them: an upstream may echo a value in any). */
export function scrubHeaders(binding: SecretBinding, headers: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  return scrubberFor(binding).scrubHeaders(headers);
}
