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

/** Wraps an outcome so only its first report counts. */
export function once(outcome: ForwardOutcome): ForwardOutcome & { readonly over: boolean } {
  let over = false;
  return {
    get over() {
      return over;
    },
    failed(status, reason) {
      if (over) return;
      over = true;
      outcome.failed(status, reason);
    },
    refused(refusal, status) {
      if (over) return;
      over = true;
      outcome.refused(refusal, status);
    },
    ended(result) {
      if (over) return;
      over = true;
      outcome.ended(result);
    },
  };
}

export function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === undefined ? err.message : `${code}: ${err.message}`;
  }
  return String(err);
}
