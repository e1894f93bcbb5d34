/**
 * Admission control for executions: at most `maxConcurrent` run at once,
 * at most `queueLimit` wait for a slot, and none waits longer than its
 * bound. Beyond that the request is refused at once (CapacityError → 503
 * with Retry-After) rather than left to pile up: under overload every
 * caller gets an answer within its own time budget.
 *
 * Slots are handed over first come, first served: a finishing execution
 * passes its slot straight to the oldest waiter.
 *
 * One caller (a JWT subject, or an address without a token) may hold at most
 * `perCallerMax` executions, running or queued: a caller within its rate
 * limit still cannot take every slot and queue place from everyone else.
 * Its next request is refused at once (CALLER_BUSY, answered 429: the
 * caller's own doing, not the service's).
 */

export type CapacityCode = 'QUEUE_FULL' | 'QUEUE_TIMEOUT' | 'CALLER_BUSY';

/** No execution slot now or within the wait allowed; retry after `retryAfterSeconds`. */
export class CapacityError extends Error {
  constructor(
    readonly code: CapacityCode,
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.name = 'CapacityError';
  }
}

export interface AdmissionOptions {
  maxConcurrent: number;
  queueLimit: number;
  /** Longest wait in the queue; a request may ask for less (acquire's maxWaitMs). */
  queueTimeoutMs: number;
  /** Executions one caller may hold at once, running or queued (default: no cap). */
  perCallerMax?: number;
}

export interface AdmissionSlot {
  /** How long the request waited for its slot (0 when one was free). */
  readonly queuedMs: number;
  /** Gives the slot back; idempotent. */
  release(): void;
}

interface Waiter {
  enqueuedAt: number;
  grant: () => void;
}

/** Weight of the newest run in the moving average behind Retry-After. */
const RUN_TIME_SMOOTHING = 0.2;
const MAX_RETRY_AFTER_SECONDS = 60;

export class Admission {
  readonly #options: AdmissionOptions;
  readonly #queue: Waiter[] = [];
  /** Executions held (running or queued) per caller key. */
  readonly #held = new Map<string, number>();
  #running = 0;
  /** Smoothed duration of one execution, for an honest Retry-After. */
  #runMs = 1_000;

  constructor(options: AdmissionOptions) {
    this.#options = options;
  }

  get running(): number {
    return this.#running;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Waits for an execution slot, at most min(queueTimeoutMs, maxWaitMs).
   * Rejects with CapacityError when the queue is full or the wait runs out,
   * and with the signal's reason when the caller goes away while queued.
   */
  acquire(maxWaitMs = Number.POSITIVE_INFINITY, signal?: AbortSignal, caller?: string): Promise<AdmissionSlot> {
    if (caller === undefined) return this.#acquire(maxWaitMs, signal);
    const held = this.#held.get(caller) ?? 0;
    const cap = this.#options.perCallerMax ?? Number.POSITIVE_INFINITY;
    if (held >= cap) {
      return Promise.reject(new CapacityError('CALLER_BUSY', `This caller already holds ${held} execution(s), running or queued; the limit is ${cap}`, this.#retryAfter()));
    }
    this.#held.set(caller, held + 1);
    let counted = true;
    const forget = () => {
      if (!counted) return;
      counted = false;
      const left = (this.#held.get(caller) ?? 1) - 1;
      if (left > 0) this.#held.set(caller, left);
      else this.#held.delete(caller);
    };
    return this.#acquire(maxWaitMs, signal).then(
      (slot) => ({
        queuedMs: slot.queuedMs,
        release: () => {
          forget();
          slot.release();
        },
      }),
      (error: unknown) => {
        forget();
        throw error;
      },
    );
  }

  #acquire(maxWaitMs: number, signal?: AbortSignal): Promise<AdmissionSlot> {
    const enqueuedAt = performance.now();
    if (this.#running < this.#options.maxConcurrent && this.#queue.length === 0) {
      this.#running += 1;
      return Promise.resolve(this.#slot(enqueuedAt, enqueuedAt));
    }
    if (this.#queue.length >= this.#options.queueLimit) {
      return Promise.reject(
        new CapacityError('QUEUE_FULL', `All ${this.#options.maxConcurrent} execution slots are busy and the queue is full`, this.#retryAfter()),
      );
    }
    signal?.throwIfAborted();
    const waitMs = Math.max(0, Math.min(this.#options.queueTimeoutMs, maxWaitMs));
    return new Promise<AdmissionSlot>((resolve, reject) => {
      const leave = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const at = this.#queue.indexOf(waiter);
        if (at !== -1) this.#queue.splice(at, 1);
      };
      const waiter: Waiter = {
        enqueuedAt,
        grant: () => {
          leave();
          resolve(this.#slot(enqueuedAt, performance.now()));
        },
      };
      const timer = setTimeout(() => {
        leave();
        reject(new CapacityError('QUEUE_TIMEOUT', `No execution slot became free within ${Math.round(waitMs)} ms`, this.#retryAfter()));
      }, waitMs);
      const onAbort = () => {
        leave();
        const reason: unknown = signal?.reason;
        reject(reason instanceof Error ? reason : new Error('request aborted while queued'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#queue.push(waiter);
    });
  }

  #slot(enqueuedAt: number, grantedAt: number): AdmissionSlot {
    let released = false;
    return {
      queuedMs: Math.round(grantedAt - enqueuedAt),
      release: () => {
        if (released) return;
        released = true;
        const ranMs = performance.now() - grantedAt;
        this.#runMs += (ranMs - this.#runMs) * RUN_TIME_SMOOTHING;
        const next = this.#queue[0];
        // The slot passes straight to the oldest waiter, so `running` is unchanged.
        if (next !== undefined) next.grant();
        else this.#running -= 1;
      },
    };
  }

  /** Seconds until the work ahead of a newcomer is likely done. */
  #retryAfter(): number {
    const ahead = this.#queue.length + 1;
    const seconds = Math.ceil((ahead * this.#runMs) / this.#options.maxConcurrent / 1000);
    return Math.min(Math.max(seconds, 1), MAX_RETRY_AFTER_SECONDS);
  }
}
