/**
 * One request's passage through the proxy, from arrival to the last byte of
 * the answer: it takes its network-log slot on arrival (so the log keeps
 * arrival order) and, when it ends, however it ends, completes that entry,
 * writes exactly one decision log line and hands the decision to every
 * observer: the one place a decision is finished.
 */
import type { NetworkLog } from './network-log.ts';
import type { DecisionObserver, EgressDecision, EgressLogger, NetworkLogEntry } from './types.ts';

/** Field names of the per-decision log line: fixed, so log queries and tests can rely on them. */
export const DECISION_LOG_MESSAGE = 'egress decision';
/**
 * Past the session's network-log cap, one decision line in this many is
 * written (the first always, each with `sampled` set): a program looping on
 * requests must not flood the operator's log. Observers still see them all.
 */
export const DECISION_LOG_SAMPLE_EVERY = 100;

/** The URL as the log shows it: without its query or fragment, where credentials (`?api_key=…`) travel. */
export function loggedUrl(url: string): string {
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}

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
  /** Origin-form path as checked; empty when the target had none (a tunnel, an unreadable request line). */
  path: string;
}

/** Where a finished exchange reports: the session's log, the proxy's logger and the decision observers. */
export interface ExchangeSinks {
  log: NetworkLog;
  logger: EgressLogger;
  observers: readonly DecisionObserver[];
  /** The session's own listener for completed network-log entries (a live view of the execution). */
  onEntry?: (entry: NetworkLogEntry) => void;
}

export class Exchange {
  readonly #start: ExchangeStart;
  readonly #began = performance.now();
  readonly #entry: NetworkLogEntry | null;
  readonly #sinks: ExchangeSinks;
  readonly #onDone: (ex: Exchange) => void;
  /** Whether this exchange writes its decision line (false for the unsampled ones past the cap). */
  readonly #logged: boolean;
  #done = false;
  /** Set when the policy answered, so the log line can say which rule decided. */
  rule: string | undefined;
  /** The policy's reason for allowing, for the log line (the network log carries reasons only for refusals). */
  policyReason: string | undefined;
  /** Names of the secrets substituted into the request, for the log entry and the decision. */
  secrets: readonly string[] = [];
  /** Set when an audit-mode policy let through what it would block; the network log then carries the reason too. */
  wouldBlock = false;

  constructor(start: ExchangeStart, sinks: ExchangeSinks, onDone: (ex: Exchange) => void) {
    this.#start = start;
    this.#sinks = sinks;
    this.#onDone = onDone;
    this.#entry = sinks.log.reserve({ method: start.method, url: start.url, hostname: start.hostname, statusCode: 0, blocked: false, durationMs: 0 });
    this.#logged = this.#entry !== null || (sinks.log.overflow - 1) % DECISION_LOG_SAMPLE_EVERY === 0;
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
      if (this.wouldBlock && !outcome.blocked) {
        this.#entry.wouldBlock = true;
        if (this.policyReason !== undefined) this.#entry.reason ??= this.policyReason;
      }
      this.#entry.durationMs = durationMs;
      if (this.secrets.length > 0) this.#entry.secrets = [...this.secrets];
      // Copied only for a listener (a streamed run): most sessions have none, and this runs per request.
      if (this.#sinks.onEntry !== undefined) this.#tellEntry({ ...this.#entry });
    }
    // Past the log's cap most exchanges are neither logged nor observed: then there is no decision to build.
    if (this.#logged || this.#sinks.observers.length > 0) this.#report(outcome, durationMs);
    this.#onDone(this);
  }

  #report(outcome: ExchangeOutcome, durationMs: number): void {
    const s = this.#start;
    const decision: EgressDecision = {
      executionId: s.executionId,
      method: s.method,
      host: s.hostname,
      port: s.port,
      path: s.path,
      url: s.url,
      allowed: !outcome.blocked,
      wouldBlock: this.wouldBlock && !outcome.blocked,
      reason: outcome.reason ?? this.policyReason ?? null,
      rule: outcome.rule ?? this.rule ?? null,
      statusCode: outcome.statusCode,
      durationMs,
      ...(this.secrets.length === 0 ? {} : { secrets: [...this.secrets] }),
    };
    if (this.#logged) {
      const { path: _path, ...line } = decision;
      const sampled = this.#entry === null ? { sampled: DECISION_LOG_SAMPLE_EVERY } : {};
      this.#sinks.logger.info({ ...line, url: loggedUrl(s.url), ...sampled }, DECISION_LOG_MESSAGE);
    }
    for (const observe of this.#sinks.observers) {
      try {
        observe(decision);
      } catch (err) {
        this.#sinks.logger.error({ executionId: s.executionId, err }, 'egress decision observer failed');
      }
    }
  }

  /** Like an observer, a failing entry listener is logged and never fails the exchange. */
  #tellEntry(entry: NetworkLogEntry): void {
    try {
      this.#sinks.onEntry?.(entry);
    } catch (err) {
      this.#sinks.logger.error({ executionId: this.#start.executionId, err }, 'network-log entry listener failed');
    }
  }
}
