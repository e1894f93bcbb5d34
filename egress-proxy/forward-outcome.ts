/**
 * How a forwarded exchange reports its end, shared by the plain relay
 * (forward.ts) and the relay of responses the policy reads (captured-relay.ts).
 */
import type { Refusal } from './errors.ts';
import type { UpstreamFailureStatus } from './responder.ts';

export interface ForwardResult {
  statusCode: number;
  /** Set when the upstream could not be reached or broke off. */
  error?: string;
}

/**
 * How a forwarded exchange ends, reported once: `failed` while the client can
 * still be answered (the responder writes the 502/504), `ended` otherwise.
 */
export interface ForwardOutcome {
  failed(status: UpstreamFailureStatus, reason: string): void;
  /** The request (its body) or the response may not pass: answered as a refusal. */
  refused(refusal: Refusal, status: number): void;
  ended(result: ForwardResult): void;
}

/**
 * Wraps an outcome so only its first report counts.
 *
 * A class, not an object literal with a getter: a literal carrying an
 * accessor of its own cannot share its hidden class with the others, and in
 * the proxy's measurements that per-request shape, kept in old space, pinned
 * the whole request (both messages and the closures round them) through
 * every scavenge until the next full collection: minor GCs cost 4-8 times as
 * much.
 */
export class OnceOutcome implements ForwardOutcome {
  readonly #outcome: ForwardOutcome;
  #over = false;

  constructor(outcome: ForwardOutcome) {
    this.#outcome = outcome;
  }

  get over(): boolean {
    return this.#over;
  }

  failed(status: UpstreamFailureStatus, reason: string): void {
    if (this.#take()) this.#outcome.failed(status, reason);
  }

  refused(refusal: Refusal, status: number): void {
    if (this.#take()) this.#outcome.refused(refusal, status);
  }

  ended(result: ForwardResult): void {
    if (this.#take()) this.#outcome.ended(result);
  }

  #take(): boolean {
    if (this.#over) return false;
    this.#over = true;
    return true;
  }
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}
