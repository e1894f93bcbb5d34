/**
 * One request's passage through the proxy, from arrival to the last byte of
 * the answer: it takes its network-log slot on arrival (so the log keeps
 * arrival order) and writes exactly one decision log line when it ends,
 * however it ends.
 */
import type { NetworkLog } from './network-log.ts';
import type { EgressLogger, NetworkLogEntry } from './types.ts';

/** Field names of the per-decision log line: fixed, so log queries and tests can rely on them. */
export const DECISION_LOG_MESSAGE = 'egress decision';

export interface ExchangeOutcome {
  statusCode: number;
  blocked: boolean;
  reason?: string;
  /** Which rule decided (`proxy:<code>` when the proxy refused by itself). */
  rule?: string;
}

export interface ExchangeStart {
  executionId: string;
  method: string;
  url: string;
  hostname: string;
  port: number;
}

export class Exchange {
  readonly #start: ExchangeStart;
  readonly #began = performance.now();
  readonly #entry: NetworkLogEntry | null;
  readonly #logger: EgressLogger;
  readonly #onDone: (ex: Exchange) => void;
  #done = false;
  /** Set when the policy answered, so the log line can say which rule decided. */
  rule: string | undefined;
  /** The policy's reason for allowing, for the log line (the network log carries reasons only for refusals). */
  policyReason: string | undefined;

  constructor(start: ExchangeStart, log: NetworkLog, logger: EgressLogger, onDone: (ex: Exchange) => void) {
    this.#start = start;
    this.#logger = logger;
    this.#onDone = onDone;
    this.#entry = log.reserve({ method: start.method, url: start.url, hostname: start.hostname, statusCode: 0, blocked: false, durationMs: 0 });
  }

  get done(): boolean {
    return this.#done;
  }

  /** Records how the exchange ended; later calls are ignored (the first outcome is the true one). */
  finish(outcome: ExchangeOutcome): void {
    if (this.#done) return;
    this.#done = true;
    const durationMs = Math.round(performance.now() - this.#began);
    if (this.#entry !== null) {
      this.#entry.statusCode = outcome.statusCode;
      this.#entry.blocked = outcome.blocked;
      if (outcome.reason !== undefined) this.#entry.reason = outcome.reason;
      this.#entry.durationMs = durationMs;
    }
    const s = this.#start;
    this.#logger.info(
      {
        executionId: s.executionId,
        method: s.method,
        url: s.url,
        host: s.hostname,
        port: s.port,
        allowed: !outcome.blocked,
        reason: outcome.reason ?? this.policyReason ?? null,
        rule: outcome.rule ?? this.rule ?? null,
        statusCode: outcome.statusCode,
        durationMs,
      },
      DECISION_LOG_MESSAGE,
    );
    this.#onDone(this);
  }
}
