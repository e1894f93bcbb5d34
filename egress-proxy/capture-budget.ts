/**
 * How much of the registry responses the policy reads (captured responses,
 * see forward.ts) a session may hold at once: a number of captures in
 * flight and a number of bytes held for them, from the first byte read
 * upstream until the client has taken it. Beyond either the proxy answers
 * 503 instead of holding more, so a sandbox cannot make the proxy's
 * process hold memory by opening many registry downloads and never
 * reading them.
 */

export interface CaptureLimits {
  /** Bytes one session's captures may hold together. */
  sessionBytes: number;
  /** Captures one session may have in flight. */
  sessionCaptures: number;
}

/** Full packuments of long-lived packages run to tens of MB: one of the largest fits, with room beside it. */
export const DEFAULT_CAPTURE_LIMITS: CaptureLimits = Object.freeze({ sessionBytes: 96 * 1024 * 1024, sessionCaptures: 8 });

/** What every session's captures hold right now, proxy-wide (for metrics, tests and benches). */
export interface CaptureStats {
  heldBytes: number;
  captures: number;
  /** The most `heldBytes` has been since the proxy started. */
  peakHeldBytes: number;
  /** Captures refused (503) for lack of budget. */
  refused: number;
}

export class CaptureAccounting {
  #held = 0;
  #captures = 0;
  #peak = 0;
  #refused = 0;

  stats(): CaptureStats {
    return { heldBytes: this.#held, captures: this.#captures, peakHeldBytes: this.#peak, refused: this.#refused };
  }

  /** @internal */
  change(bytes: number, captures: number): void {
    this.#held += bytes;
    this.#captures += captures;
    if (this.#held > this.#peak) this.#peak = this.#held;
  }

  /** @internal */
  refusedOne(): void {
    this.#refused += 1;
  }
}

/** One session's budget. */
export class CaptureBudget {
  readonly #limits: CaptureLimits;
  readonly #accounting: CaptureAccounting;
  #held = 0;
  #open = 0;

  constructor(limits: CaptureLimits, accounting: CaptureAccounting) {
    this.#limits = limits;
    this.#accounting = accounting;
  }

  get limits(): CaptureLimits {
    return this.#limits;
  }

  /** A slot for one capture, or null when the session already has as many in flight as it may. */
  open(): CaptureTicket | null {
    if (this.#open >= this.#limits.sessionCaptures) {
      this.#accounting.refusedOne();
      return null;
    }
    this.#open += 1;
    this.#accounting.change(0, 1);
    return new CaptureTicket(this);
  }

  /** @internal */
  take(bytes: number): boolean {
    if (this.#held + bytes > this.#limits.sessionBytes) {
      this.#accounting.refusedOne();
      return false;
    }
    this.#held += bytes;
    this.#accounting.change(bytes, 0);
    return true;
  }

  /** @internal */
  give(bytes: number, slot: boolean): void {
    this.#held -= bytes;
    if (slot) this.#open -= 1;
    this.#accounting.change(-bytes, slot ? -1 : 0);
  }
}

/** One capture's share of its session's budget; `close` returns all of it, once. */
export class CaptureTicket {
  readonly #budget: CaptureBudget;
  #held = 0;
  #closed = false;

  constructor(budget: CaptureBudget) {
    this.#budget = budget;
  }

  /** Takes `bytes` more, or false (taking nothing) when the session's budget would be exceeded. */
  reserve(bytes: number): boolean {
    if (this.#closed || !this.#budget.take(bytes)) return false;
    this.#held += bytes;
    return true;
  }

  /** Returns bytes the client has taken. */
  release(bytes: number): void {
    if (this.#closed) return;
    const n = Math.min(bytes, this.#held);
    this.#held -= n;
    this.#budget.give(n, false);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.give(this.#held, true);
    this.#held = 0;
  }
}
