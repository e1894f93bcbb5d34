/**
 * Graceful shutdown (DESIGN §8): once draining starts, /readyz answers 503
 * and new executions are refused with 503 + Retry-After (a load balancer
 * sends them elsewhere); running ones get until the deadline to finish.
 * Those still running then are stopped by removing their containers, and
 * their callers are told so with a 503 instead of a bare 500. Signals are
 * handled by runMain (service-kit/).
 */
import { ApiError } from './errors.ts';

export const SHUTTING_DOWN = 'SHUTTING_DOWN';
const RETRY_AFTER_SECONDS = '5';

export class Drain {
  #inFlight = 0;
  #draining = false;
  #aborted = false;
  readonly #waiters = new Set<() => void>();

  get draining(): boolean {
    return this.#draining;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Runs one execution unless draining has begun. */
  async run<T>(execute: () => Promise<T>): Promise<T> {
    if (this.#draining) {
      throw new ApiError(503, SHUTTING_DOWN, 'The service is shutting down; try again shortly', undefined, { 'Retry-After': RETRY_AFTER_SECONDS });
    }
    this.#inFlight++;
    const stopped = () =>
      new ApiError(503, SHUTTING_DOWN, 'The service shut down before the execution finished; it was stopped', undefined, {
        'Retry-After': RETRY_AFTER_SECONDS,
      });
    try {
      const result = await execute();
      // Still running when the grace period ended: its sandbox was killed
      // under it, so whatever came back (a SIGKILL exit, say) is the
      // shutdown's doing, not the program's.
      if (this.#aborted) throw stopped();
      return result;
    } catch (error) {
      if (!this.#aborted) throw error;
      throw stopped();
    } finally {
      this.#inFlight--;
      if (this.#inFlight === 0) for (const wake of this.#waiters) wake();
    }
  }

  /** From now on, refuse new executions. */
  begin(): void {
    this.#draining = true;
  }

  /** Running executions are about to be stopped: their failures are reported as the shutdown. */
  abort(): void {
    this.#aborted = true;
  }

  /** Resolves true when nothing runs any more, false if `timeoutMs` passes first. */
  settle(timeoutMs: number): Promise<boolean> {
    if (this.#inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        resolve(this.#inFlight === 0);
      }, timeoutMs);
      this.#waiters.add(wake);
    });
  }
}
