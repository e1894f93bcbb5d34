/**
 * Containers on their way out, removed a few at a time in the background.
 * Every sandbox ends here (used or not), so a burst of finished executions
 * becomes a short queue of removals instead of as many engine calls at
 * once competing with the executions still running; drain() waits for the
 * queue to empty, so nothing outlives a clean shutdown.
 */

export interface RemovalQueueOptions {
  /** Removals under way at once. */
  concurrency: number;
}

export class RemovalQueue {
  readonly #pending: Array<() => Promise<void>> = [];
  readonly #idle = new Set<() => void>();
  #running = 0;

  constructor(private readonly options: RemovalQueueOptions) {}

  /** Removals waiting or under way. */
  get size(): number {
    return this.#pending.length + this.#running;
  }

  /** Queues `remove`; it runs once fewer than `concurrency` others are under way. Its failure is its own to report. */
  add(remove: () => Promise<void>): void {
    this.#pending.push(remove);
    this.#next();
  }

  /** Resolves once every removal queued so far, and any queued meanwhile, has finished. */
  drain(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.add(resolve));
  }

  #next(): void {
    while (this.#running < this.options.concurrency) {
      const remove = this.#pending.shift();
      if (remove === undefined) break;
      this.#running += 1;
      void remove()
        .catch(() => undefined)
        .finally(() => {
          this.#running -= 1;
          this.#next();
          if (this.size === 0) {
            for (const resolve of [...this.#idle]) resolve();
            this.#idle.clear();
          }
        });
    }
  }
}
