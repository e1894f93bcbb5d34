/**
 * The one place the proxy answers by itself. Every refusal and every
 * upstream failure is written here, over whichever the request came with (a
 * `ServerResponse`, or the bare socket of a CONNECT, an upgrade or a request
 * llhttp could not parse), with the same body shape and header names, and
 * the exchange's decision (network-log entry, log line, observers) is
 * finished in the same call.
 */
import type { ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Refusal, RefusalCode } from './errors.ts';
import type { Exchange, ExchangeOutcome } from './exchange.ts';

/** Set on every refusal the proxy makes; its value is the refusal code. */
export const BLOCKED_HEADER = 'X-Egress-Blocked';
/** Set on every answer the proxy makes because the upstream failed; its value says where. */
export const ERROR_HEADER = 'X-Egress-Error';
const UPSTREAM_ERROR = 'upstream';
const BUSY_ERROR = 'capture-budget';

/** What an answer is written to. */
export type Sink = { kind: 'response'; res: ServerResponse } | { kind: 'socket'; socket: Duplex };

/** 503: the proxy will not hold more for this sandbox now (see capture-budget.ts). */
export type UpstreamFailureStatus = 502 | 503 | 504;

/** A bare socket a client never reads from is cut after this long. */
const RAW_LINGER_MS = 2000;

export function refusalBody(r: Refusal): string {
  const error = r.status === 403 ? 'blocked by egress policy' : r.status === 429 ? 'too many requests' : 'bad request';
  return JSON.stringify({ error, reason: r.reason });
}

export function upstreamFailureBody(status: UpstreamFailureStatus, reason: string): string {
  const error = status === 504 ? 'upstream timed out' : status === 503 ? 'proxy busy' : 'upstream unavailable';
  return JSON.stringify({ error, reason });
}

export class Responder {
  readonly #sink: Sink;
  readonly #ex: Exchange;

  constructor(sink: Sink, ex: Exchange) {
    this.#sink = sink;
    this.#ex = ex;
  }

  get exchange(): Exchange {
    return this.#ex;
  }

  /**
   * Refuses: a 4xx (`status` when the HTTP status should say more than the
   * refusal's own, e.g. 431) with the refusal's code in X-Egress-Blocked.
   * `rule` defaults to the policy rule that decided, else `proxy:<code>`.
   */
  refuse(r: Refusal, options: { status?: number; rule?: string } = {}): void {
    const status = options.status ?? r.status;
    // After a framing or syntax problem the rest of the connection cannot be trusted.
    const headers = { [BLOCKED_HEADER]: r.code, ...(r.retryAfterS === undefined ? {} : { 'Retry-After': String(r.retryAfterS) }) };
    this.#write(status, headers, refusalBody(r), r.status === 400);
    this.#finish({ statusCode: status, blocked: true, reason: r.reason, rule: options.rule ?? this.#ex.rule ?? `proxy:${r.code}` });
  }

  /** A refusal no HTTP answer can carry (the TLS handshake inside a tunnel failed, and was closed there): recorded with status 0. */
  refuseUnanswered(code: RefusalCode, reason: string): void {
    this.#finish({ statusCode: 0, blocked: true, reason, rule: `proxy:${code}` });
  }

  /** The request was allowed but the upstream could not be reached or failed before answering (or, 503, the proxy would not hold its answer). */
  upstreamFailed(status: UpstreamFailureStatus, reason: string): void {
    const headers: Record<string, string> = status === 503 ? { [ERROR_HEADER]: BUSY_ERROR, 'Retry-After': '1' } : { [ERROR_HEADER]: UPSTREAM_ERROR };
    this.#write(status, headers, upstreamFailureBody(status, reason), false);
    this.#finish({ statusCode: status, blocked: false, reason });
  }

  /** The exchange ended otherwise (relayed, broken off, client gone): only recorded. */
  ended(outcome: ExchangeOutcome): void {
    this.#finish(outcome);
  }

  #finish(outcome: ExchangeOutcome): void {
    this.#ex.finish(outcome);
  }

  #write(status: number, headers: Readonly<Record<string, string>>, body: string, closeAfter: boolean): void {
    const all = { 'Content-Type': 'application/json', ...headers };
    if (this.#sink.kind === 'socket') {
      writeRawResponse(this.#sink.socket, status, all, body);
      return;
    }
    const res = this.#sink.res;
    if (res.headersSent || res.destroyed) {
      // Too late to answer: cutting the connection is the only signal left.
      res.destroy();
      return;
    }
    res.writeHead(status, { ...all, 'Content-Length': Buffer.byteLength(body), ...(closeAfter ? { Connection: 'close' } : {}) });
    res.end(body);
  }
}

/**
 * Answers on a bare socket, where no ServerResponse exists, and closes it:
 * after a parse error or a refused tunnel nothing else on the connection can
 * be trusted.
 */
function writeRawResponse(socket: Duplex, status: number, headers: Readonly<Record<string, string>>, body: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const [k, v] of Object.entries({ ...headers, 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' })) {
    head += `${k}: ${v}\r\n`;
  }
  socket.end(`${head}\r\n${body}`);
  // A client that never reads must not keep the socket alive.
  setTimeout(() => socket.destroy(), RAW_LINGER_MS).unref();
}
