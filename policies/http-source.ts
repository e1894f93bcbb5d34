/**
 * The policy API over HTTP (`POLICY_API_URL`): a GET with the caller's bearer
 * token, a short timeout, and a size limit on the answer. Every failure is a
 * PolicyError with a stable code.
 */
import { request } from 'undici';
import { PolicyError } from './errors.ts';
import type { PolicyRequest, PolicySource } from './source.ts';

export const DEFAULT_POLICY_FETCH_TIMEOUT_MS = 5_000;
export const MAX_POLICY_BYTES = 1024 * 1024;

type UndiciRequest = typeof request;
/** undici's `request` as this source calls it; injectable so tests can watch (or forbid) the calls. */
export type HttpRequest = (url: URL, options: NonNullable<Parameters<UndiciRequest>[1]>) => ReturnType<UndiciRequest>;

export interface HttpPolicySourceOptions {
  /** The policy API endpoint (`POLICY_API_URL`). */
  url: string | URL;
  /** Whole-request limit (`POLICY_FETCH_TIMEOUT_MS`). */
  timeoutMs?: number;
  /** Default: undici's `request`. */
  request?: HttpRequest;
}

export class HttpPolicySource implements PolicySource {
  readonly name = 'Policy API';
  readonly #url: URL;
  readonly #timeoutMs: number;
  readonly #request: HttpRequest;

  constructor(options: HttpPolicySourceOptions) {
    this.#url = new URL(options.url);
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_POLICY_FETCH_TIMEOUT_MS;
    this.#request = options.request ?? request;
  }

  get description(): string {
    return this.#url.href;
  }

  async load({ token }: PolicyRequest): Promise<unknown> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let response: Awaited<ReturnType<HttpRequest>>;
    try {
      response = await this.#request(this.#url, {
        method: 'GET',
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        signal,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      });
    } catch (error) {
      throw this.#transportError(error, signal);
    }
    const { statusCode, body } = response;
    if (statusCode < 200 || statusCode > 299) {
      await body.dump();
      throw new PolicyError('ERR_POLICY_HTTP_STATUS', `Policy API answered HTTP ${statusCode}`, { status: statusCode });
    }
    let text = '';
    try {
      for await (const chunk of body) {
        text += (chunk as Buffer).toString('utf8');
        if (text.length > MAX_POLICY_BYTES) {
          body.destroy();
          throw new PolicyError('ERR_POLICY_BAD_JSON', `Policy API response is larger than ${MAX_POLICY_BYTES} bytes`);
        }
      }
    } catch (error) {
      if (error instanceof PolicyError) throw error;
      throw this.#transportError(error, signal);
    }
    let document: unknown;
    try {
      document = JSON.parse(text) as unknown;
    } catch (error) {
      throw new PolicyError('ERR_POLICY_BAD_JSON', `Policy API returned invalid JSON: ${describeError(error)}`);
    }
    return withEtagVersion(document, response.headers.etag);
  }

  #transportError(error: unknown, signal: AbortSignal): PolicyError {
    const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : '';
    if (signal.aborted || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      return new PolicyError('ERR_POLICY_TIMEOUT', `Policy API did not answer within ${this.#timeoutMs} ms`, { cause: error });
    }
    return new PolicyError('ERR_POLICY_UNREACHABLE', `Policy API unreachable: ${describeError(error)}`, { cause: error });
  }
}

/** The ETag names the policy's revision when the document does not name one itself. */
export function withEtagVersion(document: unknown, etag: string | string[] | undefined): unknown {
  const tag = Array.isArray(etag) ? etag[0] : etag;
  if (tag === undefined || typeof document !== 'object' || document === null || Array.isArray(document) || 'version' in document) return document;
  const version = tag.replace(/^W\//u, '').replace(/^"(.*)"$/u, '$1');
  return version === '' || version.length > 200 ? document : { ...document, version };
}

export function describeError(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return describeError(error.errors[0]);
  return error instanceof Error ? error.message : String(error);
}
