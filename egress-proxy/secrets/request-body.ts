/**
 * Secret substitution in a request body, streamed. The value is encoded for
 * where the placeholder sits: JSON-escaped in a JSON body (so a quote in a
 * value cannot add fields), form-encoded in a form body, as it is in text.
 *
 * Lengths change (placeholder and value differ), so a body that was sent
 * with Content-Length must be forwarded either with the length recomputed
 * (`substituteBodyBuffer`, for a body the proxy holds whole) or chunked
 * (`createBodySubstitution`, with Content-Length removed and
 * `Transfer-Encoding: chunked` set). The stream holds back its output until
 * `holdBytes` were checked, so a body up to that size that carries a
 * misplaced placeholder fails before any of it is sent: open the upstream
 * request on the stream's first output, not before.
 */
import { PLACEHOLDER_PREFIX, canonicalHost } from '../../policies/index.ts';
import type { BoundSecret, SecretBinding } from '../../policies/index.ts';
import { misplacedSecret, SecretRefusalError } from './refusal.ts';
import { RewriteStream, rewriteAll } from './rewrite-stream.ts';
import type { Rewriter } from './rewrite-stream.ts';

export type BodyKind = 'json' | 'form' | 'text' | 'other';

/** Default `holdBytes`: bodies up to this size are checked whole before anything is forwarded. */
export const DEFAULT_BODY_HOLD_BYTES = 1024 * 1024;

/** The body's kind, from its Content-Type: only JSON, form and text bodies are substituted. */
export function bodyKind(contentType: string | undefined): BodyKind {
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === 'application/json' || /^application\/[a-z0-9.+-]*\+json$/.test(type)) return 'json';
  if (type === 'application/x-www-form-urlencoded') return 'form';
  if (type.startsWith('text/')) return 'text';
  return 'other';
}

const ENCODE: Record<Exclude<BodyKind, 'other'>, (value: string) => string> = {
  json: (value) => JSON.stringify(value).slice(1, -1),
  form: (value) => encodeURIComponent(value).replace(/%20/g, '+'),
  text: (value) => value,
};

export interface BodyContext {
  host: string;
  port: number;
  contentType: string | undefined;
  /**
   * The body's Content-Encoding. An encoded body is not searched: a
   * placeholder inside compressed bytes is never substituted, so it stays
   * a placeholder wherever it goes.
   */
  contentEncoding?: string | undefined;
}

/** Whether the body must go through the substitution at all. */
export function bodyNeedsSubstitution(binding: SecretBinding, context: BodyContext): boolean {
  const encoding = (context.contentEncoding ?? '').trim().toLowerCase();
  return binding.size > 0 && (encoding === '' || encoding === 'identity');
}

/** The rewriter behind both forms; `used` collects the names substituted. */
function bodyRewriter(binding: SecretBinding, context: BodyContext, used: Set<string>): Rewriter {
  const kind = bodyKind(context.contentType);
  const host = canonicalHost(context.host) ?? context.host;
  const prefix = Buffer.from(PLACEHOLDER_PREFIX, 'latin1');
  const needles = binding.secrets.map((secret) => ({ secret, bytes: Buffer.from(secret.placeholder, 'latin1') }));
  const longest = Math.max(prefix.length, ...needles.map((needle) => needle.bytes.length));
  const replacement = new Map<BoundSecret, Buffer>();

  const replace = (secret: BoundSecret): Buffer => {
    if (!secret.allowsHost(context.host, context.port)) throw new SecretRefusalError(misplacedSecret(secret.name, host, null));
    if (!secret.allowsPlace('body')) throw new SecretRefusalError(misplacedSecret(secret.name, host, 'body'));
    if (kind === 'other') {
      const type = (context.contentType ?? '').split(';')[0]?.trim() || 'no Content-Type';
      throw new SecretRefusalError(misplacedSecret(secret.name, host, 'body', `${type}: only JSON, form and text bodies are substituted`));
    }
    used.add(secret.name);
    let bytes = replacement.get(secret);
    if (bytes === undefined) {
      bytes = Buffer.from(ENCODE[kind](secret.value), 'utf8');
      replacement.set(secret, bytes);
    }
    return bytes;
  };

  return (buffer, final) => {
    const limit = final ? buffer.length : Math.max(0, buffer.length - (longest - 1));
    const output: Buffer[] = [];
    let cursor = 0;
    let at = buffer.indexOf(prefix, 0);
    while (at !== -1 && at < limit) {
      const needle = needles.find((n) => buffer.length - at >= n.bytes.length && buffer.compare(n.bytes, 0, n.bytes.length, at, at + n.bytes.length) === 0);
      if (needle === undefined) {
        at = buffer.indexOf(prefix, at + 1);
        continue;
      }
      output.push(buffer.subarray(cursor, at), replace(needle.secret));
      cursor = at + needle.bytes.length;
      at = buffer.indexOf(prefix, cursor);
    }
    const consumed = Math.max(cursor, limit);
    output.push(buffer.subarray(cursor, consumed));
    return { output, consumed };
  };
}

export type BodyBufferResult = { ok: true; body: Buffer; used: string[] } | { ok: false; refusal: SecretRefusalError['refusal'] };

/** Substitutes into a body held whole; the caller sets Content-Length to `body.length`. */
export function substituteBodyBuffer(binding: SecretBinding, context: BodyContext, body: Buffer): BodyBufferResult {
  if (!bodyNeedsSubstitution(binding, context)) return { ok: true, body, used: [] };
  const used = new Set<string>();
  try {
    return { ok: true, body: rewriteAll(bodyRewriter(binding, context, used), body), used: [...used] };
  } catch (error) {
    if (error instanceof SecretRefusalError) return { ok: false, refusal: error.refusal };
    throw error;
  }
}

/** A streamed body substitution; fails with a SecretRefusalError on a misplaced placeholder. */
export class BodySubstitution extends RewriteStream {
  readonly #used: Set<string>;

  constructor(binding: SecretBinding, context: BodyContext, options: { holdBytes?: number } = {}) {
    const used = new Set<string>();
    super(bodyRewriter(binding, context, used), { holdBytes: options.holdBytes ?? DEFAULT_BODY_HOLD_BYTES });
    this.#used = used;
  }

  /** Names substituted so far (complete once the stream ended). */
  get used(): string[] {
    return [...this.#used];
  }
}

/**
 * The headers for forwarding a streamed substituted body: Content-Length
 * removed (the length changes), `Transfer-Encoding: chunked` set unless the
 * request already was chunked.
 */
export function chunkedBodyHeaders(headers: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  const kept = headers.filter(([name]) => name.toLowerCase() !== 'content-length').map(([name, value]): [string, string] => [name, value]);
  if (!kept.some(([name, value]) => name.toLowerCase() === 'transfer-encoding' && /(^|,)\s*chunked\s*$/i.test(value))) kept.push(['Transfer-Encoding', 'chunked']);
  return kept;
}

export function createBodySubstitution(binding: SecretBinding, context: BodyContext, options: { holdBytes?: number } = {}): BodySubstitution {
  return new BodySubstitution(binding, context, options);
}
