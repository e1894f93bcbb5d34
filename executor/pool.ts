/**
 * The warm pool: per runtime, a few sandboxes created and started ahead of
 * time with the same lockdown as the cold path (Executor.prepare), their
 * agents waiting for a job header. Each runs one job and is removed, never
 * reused; the pool refills in the background. A pooled sandbox has no
 * egress session and so no route out until a job is assigned to it.
 *
 * When the pool for a runtime is empty (load, a slow engine, size 0) a job
 * takes the cold path, so the pool only ever removes latency, never adds a
 * wait.
 */
import { LABEL_POOL, type Runtime } from './container-spec.ts';
import type { ExecutionJob, ExecutionResult, Executor, Logger } from './executor.ts';
import type { ReadySandbox } from './sandbox.ts';

export interface WarmPoolOptions {
  executor: Executor;
  runtimes: readonly Runtime[];
  /** Ready sandboxes kept per runtime; 0 disables the pool. */
  size: number;
  logger: Logger;
  /** First and largest pause before retrying after a failed refill. */
  retryMs?: { min: number; max: number };
}

export interface WarmPoolStats {
  size: number;
  ready: Partial<Record<Runtime, number>>;
  starting: Partial<Record<Runtime, number>>;
  /** Jobs served by a pooled sandbox / by the cold path since start. */
  warmRuns: number;
  coldRuns: number;
}

const DEFAULT_RETRY = { min: 1_000, max: 30_000 };

interface RuntimeSlot {
  ready: ReadySandbox[];
  starting: number;
  retryDelay: number;
  retryTimer: NodeJS.Timeout | undefined;
}

export class WarmPool {
  readonly #slots = new Map<Runtime, RuntimeSlot>();
  readonly #starting = new Set<Promise<void>>();
  readonly #waiters = new Set<() => void>();
  readonly #retry: { min: number; max: number };
  #closed = false;
  #warmRuns = 0;
  #coldRuns = 0;

  constructor(private readonly options: WarmPoolOptions) {
    this.#retry = options.retryMs ?? DEFAULT_RETRY;
    for (const runtime of options.runtimes) {
      this.#slots.set(runtime, { ready: [], starting: 0, retryDelay: this.#retry.min, retryTimer: undefined });
    }
  }

  get size(): number {
    return this.options.size;
  }

  /** Begins filling every runtime's pool in the background. */
  start(): void {
    for (const runtime of this.#slots.keys()) this.#refill(runtime);
  }

  /**
   * Runs the job in a pooled sandbox if one is ready and fits it, else on
   * the cold path. The pool alone decides what fits: pooled sandboxes hide
   * every tool of the image, so a job whose policy shows one needs a
   * container of its own and leaves the pool alone rather than take a
   * sandbox it would only throw away. The job's egress session opens when
   * it reaches the sandbox (Executor.runIn), never before.
   */
  async run(job: ExecutionJob): Promise<ExecutionResult> {
    const sandbox = (await this.#fits(job)) ? this.#take(job.runtime) : undefined;
    if (sandbox === undefined) {
      this.#coldRuns += 1;
      return this.options.executor.run(job);
    }
    this.#warmRuns += 1;
    try {
      return await this.options.executor.runIn(sandbox, job);
    } finally {
      // While others are ready, the replacement starts once the job is
      // done: made during it, the engine's work would take CPU from the
      // very program the pool is there to speed up (on two cores, about a
      // fifth of a warm run). #take refills at once when it empties the pool.
      this.#refill(job.runtime);
    }
  }

  /** Whether the job can run in a pooled sandbox, which shows none of the image's tools. */
  async #fits(job: ExecutionJob): Promise<boolean> {
    return (await this.options.executor.exposedToolsFor(job.runtime, job.allowedBinaries ?? [])).length === 0;
  }

  /** Hands out a ready sandbox; it leaves the pool for good. */
  #take(runtime: Runtime): ReadySandbox | undefined {
    const slot = this.#slots.get(runtime);
    if (slot === undefined) return undefined;
    let sandbox: ReadySandbox | undefined;
    while ((sandbox = slot.ready.shift()) !== undefined && !sandbox.alive) this.options.executor.discard(sandbox);
    if (slot.ready.length === 0) this.#refill(runtime);
    return sandbox;
  }

  stats(): WarmPoolStats {
    const ready: Partial<Record<Runtime, number>> = {};
    const starting: Partial<Record<Runtime, number>> = {};
    for (const [runtime, slot] of this.#slots) {
      ready[runtime] = slot.ready.length;
      starting[runtime] = slot.starting;
    }
    return { size: this.options.size, ready, starting, warmRuns: this.#warmRuns, coldRuns: this.#coldRuns };
  }

  /** Resolves once every runtime has `size` sandboxes ready (at once when the pool is disabled). */
  whenFull(): Promise<void> {
    if (this.#full()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => {
        if (!this.#full() && !this.#closed) return;
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  /** Stops refilling, waits for sandboxes still starting, and removes every pooled one. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const slot of this.#slots.values()) clearTimeout(slot.retryTimer);
    while (this.#starting.size > 0) await Promise.allSettled([...this.#starting]);
    for (const slot of this.#slots.values()) {
      for (const sandbox of slot.ready.splice(0)) this.options.executor.discard(sandbox);
    }
    this.#notify();
    await this.options.executor.settle();
  }

  #full(): boolean {
    return [...this.#slots.values()].every((slot) => slot.ready.length >= this.options.size);
  }

  #notify(): void {
    for (const check of [...this.#waiters]) check();
  }

  #refill(runtime: Runtime): void {
    const slot = this.#slots.get(runtime);
    if (slot === undefined || this.#closed || slot.retryTimer !== undefined) return;
    while (slot.ready.length + slot.starting < this.options.size) {
      slot.starting += 1;
      const starting = this.#startOne(runtime, slot).finally(() => {
        slot.starting -= 1;
        this.#starting.delete(starting);
      });
      this.#starting.add(starting);
    }
  }

  async #startOne(runtime: Runtime, slot: RuntimeSlot): Promise<void> {
    let sandbox: ReadySandbox;
    try {
      sandbox = await this.options.executor.prepare(runtime, { [LABEL_POOL]: runtime });
    } catch (error) {
      if (this.#closed) return;
      // The engine is down or the image missing: jobs take the cold path (and
      // get its error); the pool tries again later instead of spinning.
      this.options.logger.warn({ runtime, err: error instanceof Error ? error.message : String(error), retryMs: slot.retryDelay }, 'warm pool refill failed');
      if (slot.retryTimer === undefined) {
        slot.retryTimer = setTimeout(() => {
          slot.retryTimer = undefined;
          this.#refill(runtime);
        }, slot.retryDelay);
        slot.retryTimer.unref();
        slot.retryDelay = Math.min(slot.retryDelay * 2, this.#retry.max);
      }
      return;
    }
    if (this.#closed) {
      this.options.executor.discard(sandbox);
      return;
    }
    slot.retryDelay = this.#retry.min;
    slot.ready.push(sandbox);
    // A pooled sandbox whose container stops or whose stream closes (an
    // engine restart, a kill from outside) can never take a job: replace it
    // now, not when a job finds it.
    void sandbox.lost.then(() => {
      const at = slot.ready.indexOf(sandbox);
      if (at === -1) return;
      slot.ready.splice(at, 1);
      this.options.logger.warn({ runtime, sandboxId: sandbox.id }, 'pooled sandbox stopped before its job');
      this.options.executor.discard(sandbox);
      this.#refill(runtime);
    });
    this.#notify();
  }
}
