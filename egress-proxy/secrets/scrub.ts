/**
 * Scrubbing: every real value, and the forms a server would echo it in, is
 * replaced by its placeholder before a response (or the program's output)
 * reaches the sandbox or the caller.
 *
 * Forms: the value as it is; JSON-escaped (also with `\/` and with
 * non-ASCII as `\uXXXX`); percent-encoded (upper and lower hex, form `+`,
 * and every non-unreserved byte escaped); base64 and base64url at each of
 * the three byte alignments, so the value is found inside a longer base64
 * string too (the Basic-auth `user:value`). A base64 token holding the
 * value is decoded, the value replaced, and the token re-encoded, so
 * `Basic base64(user:value)` comes back as `Basic base64(user:placeholder)`.
 * A base64 run longer than RUN_CAP is not re-encoded: the part that spells
 * the value is overwritten with `A`s instead, which keeps the rest aligned.
 */
import type { SecretBinding } from '../../policies/index.ts';
import { RewriteStream, rewriteAll } from './rewrite-stream.ts';
import type { Rewriter } from './rewrite-stream.ts';

/** Longest base64 token re-encoded whole; the stream keeps at most this much of a trailing token back. */
export const RUN_CAP = 16 * 1024;

interface SecretBytes {
  value: Buffer;
  placeholder: Buffer;
}

interface Form {
  bytes: Buffer;
  secret: SecretBytes;
  base64: 'base64' | 'base64url' | null;
}

interface Match {
  start: number;
  end: number;
  form: Form;
}

const UNRESERVED = /[A-Za-z0-9_.~-]/;

function literalForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  const jsonAscii = json.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  const percent = encodeURIComponent(value);
  const strictPercent = [...Buffer.from(value, 'utf8')]
    .map((byte) => (UNRESERVED.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
  const forms = [
    value,
    json,
    jsonAscii,
    json.replace(/\//g, '\\/'),
    percent,
    percent.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()),
    percent.replace(/%20/g, '+'),
    strictPercent,
    strictPercent.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase()),
  ];
  return [...new Set(forms)];
}

/** The part of base64(…value…) that depends on the value alone, for each byte alignment. */
function base64Cores(value: Buffer): Array<{ text: string; alphabet: 'base64' | 'base64url' }> {
  const cores: Array<{ text: string; alphabet: 'base64' | 'base64url' }> = [];
  for (const skip of [0, 1, 2]) {
    const groups = Math.floor((value.length - skip) / 3);
    if (groups < 2) continue;
    const whole = value.subarray(skip, skip + groups * 3);
    const standard = whole.toString('base64');
    const url = whole.toString('base64url');
    cores.push({ text: standard, alphabet: 'base64' });
    if (url !== standard) cores.push({ text: url, alphabet: 'base64url' });
  }
  return cores;
}

const isBase64Char = (byte: number): boolean =>
  (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2b || byte === 0x2f || byte === 0x2d || byte === 0x5f;
const EQUALS = 0x3d;

function replaceAll(haystack: Buffer, needle: Buffer, replacement: Buffer): Buffer {
  const parts: Buffer[] = [];
  let cursor = 0;
  let at = haystack.indexOf(needle);
  while (at !== -1) {
    parts.push(haystack.subarray(cursor, at), replacement);
    cursor = at + needle.length;
    at = haystack.indexOf(needle, cursor);
  }
  if (cursor === 0) return haystack;
  parts.push(haystack.subarray(cursor));
  return Buffer.concat(parts);
}

/** The scrubbing of one binding: forms computed once, used for every response of the execution. */
export class Scrubber {
  readonly #forms: Form[];
  readonly #longest: number;

  constructor(binding: SecretBinding) {
    this.#forms = binding.secrets.flatMap((secret) => {
      const bytes: SecretBytes = { value: Buffer.from(secret.value, 'utf8'), placeholder: Buffer.from(secret.placeholder, 'utf8') };
      const literals = literalForms(secret.value).map((text): Form => ({ bytes: Buffer.from(text, 'utf8'), secret: bytes, base64: null }));
      const cores = base64Cores(bytes.value).map((core): Form => ({ bytes: Buffer.from(core.text, 'latin1'), secret: bytes, base64: core.alphabet }));
      return [...literals, ...cores];
    });
    this.#longest = Math.max(1, ...this.#forms.map((form) => form.bytes.length));
  }

  get empty(): boolean {
    return this.#forms.length === 0;
  }

  /** The stream rewriter: rewrites what it sees whole, keeps back what could still grow into a match. */
  readonly rewrite: Rewriter = (buffer, final) => {
    if (this.#forms.length === 0) return { output: [buffer], consumed: buffer.length };
    let limit = final ? buffer.length : Math.max(0, buffer.length - (this.#longest - 1));
    if (!final) {
      // Never cut inside a base64 token (up to RUN_CAP): it is decoded whole, from its first group.
      let runStart = limit;
      while (runStart > 0 && limit - runStart <= RUN_CAP && (isBase64Char(buffer[runStart - 1] ?? 0) || buffer[runStart - 1] === EQUALS)) runStart -= 1;
      if (limit - runStart <= RUN_CAP) limit = runStart;
    }
    const matches = this.#find(buffer, limit);
    const output: Buffer[] = [];
    let cursor = 0;
    let consumed = limit;
    for (const match of matches) {
      if (match.start < cursor) continue;
      if (match.form.base64 === null) {
        output.push(buffer.subarray(cursor, match.start), match.form.secret.placeholder);
        cursor = match.end;
        continue;
      }
      const token = this.#base64Token(buffer, match, cursor);
      if (!final && token.end === buffer.length && token.end - token.start <= RUN_CAP) {
        consumed = token.start;
        break;
      }
      output.push(buffer.subarray(cursor, token.start), token.replacement);
      cursor = token.end;
    }
    consumed = Math.max(consumed, cursor);
    output.push(buffer.subarray(cursor, consumed));
    return { output, consumed };
  };

  /** Every match starting before `limit`, by position, longer first. */
  #find(buffer: Buffer, limit: number): Match[] {
    const matches: Match[] = [];
    for (const form of this.#forms) {
      let at = buffer.indexOf(form.bytes);
      while (at !== -1 && at < limit) {
        matches.push({ start: at, end: at + form.bytes.length, form });
        at = buffer.indexOf(form.bytes, at + form.bytes.length);
      }
    }
    return matches.sort((a, b) => a.start - b.start || b.end - a.end);
  }

  /** The base64 token around a core match, and what replaces it. */
  #base64Token(buffer: Buffer, match: Match, floor: number): { start: number; end: number; replacement: Buffer } {
    let start = match.start;
    while (start > floor && isBase64Char(buffer[start - 1] ?? 0)) start -= 1;
    let end = match.end;
    while (end < buffer.length && isBase64Char(buffer[end] ?? 0)) end += 1;
    while (end < buffer.length && buffer[end] === EQUALS && end - match.end < RUN_CAP) end += 1;
    const masked = (): { start: number; end: number; replacement: Buffer } => ({
      start: match.start,
      end: match.end,
      replacement: Buffer.alloc(match.end - match.start, 'A'),
    });
    if (end - start > RUN_CAP) return masked();
    // The core starts on a 4-character group; characters before the token's first group are not part of it.
    const aligned = start + ((match.start - start) % 4);
    const text = buffer.toString('latin1', aligned, end);
    const alphabet = /[-_]/.test(text) ? 'base64url' : 'base64';
    const decoded = Buffer.from(text, alphabet);
    const { value, placeholder } = match.form.secret;
    if (decoded.indexOf(value) === -1) return masked();
    let encoded = replaceAll(decoded, value, placeholder).toString(alphabet);
    // Keep the token's style: padded when it was (or had a whole number of groups), unpadded otherwise.
    const padded = text.endsWith('=') || (alphabet === 'base64' && text.length % 4 === 0);
    if (alphabet === 'base64url' && padded) encoded += '='.repeat((4 - (encoded.length % 4)) % 4);
    if (alphabet === 'base64' && !padded) encoded = encoded.replace(/=+$/, '');
    return { start: aligned, end, replacement: Buffer.from(encoded, 'latin1') };
  }

  /** Scrubs bytes held whole. */
  scrubBuffer(buffer: Buffer): Buffer {
    return this.empty ? buffer : rewriteAll(this.rewrite, buffer);
  }

  /** Scrubs a string (the program's stdout or stderr). */
  scrubText(text: string): string {
    if (this.empty) return text;
    const bytes = Buffer.from(text, 'utf8');
    const scrubbed = this.scrubBuffer(bytes);
    return scrubbed === bytes ? text : scrubbed.toString('utf8');
  }

  /** Scrubs header pairs; values are latin1 views of their bytes, as Node gives them. */
  scrubHeaders(headers: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
    return headers.map(([name, value]) => [name, this.empty ? value : this.scrubBuffer(Buffer.from(value, 'latin1')).toString('latin1')]);
  }

  /** A Transform that scrubs a body stream with a bounded window. */
  createStream(): RewriteStream {
    return new RewriteStream(this.rewrite);
  }
}

const scrubbers = new WeakMap<SecretBinding, Scrubber>();

/** The binding's scrubber, made on first use. */
export function scrubberFor(binding: SecretBinding): Scrubber {
  let scrubber = scrubbers.get(binding);
  if (scrubber === undefined) {
    scrubber = new Scrubber(binding);
    scrubbers.set(binding, scrubber);
  }
  return scrubber;
}

/** Shortest start of a value masked at the end of truncated output. */
export const MIN_TRUNCATED_PREFIX = 4;

/**
 * The last line: replaces every value still present in the program's output
 * with its placeholder. Run it on stdout and stderr before they go into the
 * result. With `truncated` (the output cap cut the text), text that ends
 * with the first bytes of a value has them replaced by as many bytes of the
 * placeholder, since the rest of the value was cut off.
 */
export function scrubText(text: string, binding: SecretBinding, options: { truncated?: boolean } = {}): string {
  const scrubbed = scrubberFor(binding).scrubText(text);
  if (options.truncated !== true) return scrubbed;
  for (const secret of binding.secrets) {
    for (let length = Math.min(secret.value.length - 1, scrubbed.length); length >= MIN_TRUNCATED_PREFIX; length -= 1) {
      if (scrubbed.endsWith(secret.value.slice(0, length))) {
        return scrubbed.slice(0, scrubbed.length - length) + secret.placeholder.slice(0, length);
      }
    }
  }
  return scrubbed;
}
