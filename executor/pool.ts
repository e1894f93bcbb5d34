/**
 * The warm pool: per runtime and isolation tier, a few sandboxes created and started ahead of
 * time with the same lockdown as the cold path (Executor.prepare), their
 * agents waiting for a job header. Each runs one job and is removed, never
 * reused; the pool refills in the background. A pooled sandbox has no
 * egress session and so no route out until a job is assigned to it.
 *
 * When the pool for a runtime and tier is empty under load, a job waits for
 * the next sandbox to come ready (one is always being made for it) rather
 * than make one more container beside those already starting: the
 * sandbox made first is ready first, and the engine is not asked for more
 * lifecycles at once than there are jobs. Refills are paced: one at a time
 * while no job waits, so they never crowd out the programs running. With
 * size 0, or while the engine fails refills, jobs take the cold path.
 */
import { LABEL_POOL, type Isolation, type Runtime } from './container-spec.ts';
import type { ExecutionJob, ExecutionResult, Executor, Logger } from './executor.ts';
import type { ReadySandbox } from './sandbox.ts';

export interface WarmPoolOptions {
  executor: Executor;
  runtimes: readonly Runtime[];
  /** The tiers jobs may ask for; each runtime gets a pool under each. */
  isolations: readonly Isolation[];
  /** Ready sandboxes kept per runtime and tier; 0 disables the pool. */
  size: number;
  logger: Logger;
  /** First and largest pause before retrying after a failed refill. */
  retryMs?: { min: number; max: number };
}

/** A pool's key: `<runtime>/<isolation>`, e.g. `node/gvisor`. */
export type PoolKey = `${Runtime}/${Isolation}`;

export function poolKey(runtime: Runtime, isolation: Isolation): PoolKey {
  return `${runtime}/${isolation}`;
}

export interface WarmPoolStats {
  size: number;
  ready: Partial<Record<PoolKey, number>>;
  starting: Partial<Record<PoolKey, number>>;
  /** Jobs waiting for a sandbox being made. */
  waiting: Partial<Record<PoolKey, number>>;
  /** Jobs served by a pooled sandbox / by the cold path since start. */
  warmRuns: number;
  coldRuns: number;
  /** Of warmRuns, the jobs that waited for their sandbox to come ready. */
  waitedRuns: number;
}

const DEFAULT_RETRY = { min: 1_000, max: 30_000 };

interface RuntimeSlot {
  runtime: Runtime;
  isolation: Isolation;
  ready: ReadySandbox[];
  starting: number;
  /** Jobs waiting for the next sandbox to come ready, first come first served; undefined sends a job cold. */
  waiters: Array<(sandbox: ReadySandbox | undefined) => void>;
  retryDelay: number;
  retryTimer: NodeJS.Timeout | undefined;
}

export class WarmPool {
  readonly #slots = new Map<PoolKey, RuntimeSlot>();
  readonly #starting = new Set<Promise<void>>();
  readonly #waiters = new Set<() => void>();
  readonly #retry: { min: number; max: number };
  #closed = false;
  #warmRuns = 0;
  #coldRuns = 0;
  #waitedRuns = 0;

  constructor(private readonly options: WarmPoolOptions) {
    this.#retry = options.retryMs ?? DEFAULT_RETRY;
    for (const runtime of options.runtimes) {
      for (const isolation of options.isolations) {
        this.#slots.set(poolKey(runtime, isolation), { runtime, isolation, ready: [], starting: 0, waiters: [], retryDelay: this.#retry.min, retryTimer: undefined });
      }
    }
  }

  get size(): number {
    return this.options.size;
  }

  /** Begins filling every pool in the background. */
  start(): void {
    for (const key of this.#slots.keys()) this.#refill(key);
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
    const key = poolKey(job.runtime, job.isolation);
    const fits = await this.#fits(job);
    let sandbox = fits ? this.#take(key) : undefined;
    if (sandbox === undefined && fits) {
      sandbox = await this.#next(key);
      if (sandbox !== undefined) this.#waitedRuns += 1;
    }
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
      this.#refill(key);
    }
  }

  /**
   * The next sandbox to come ready for `key`, for a job that found the pool
   * empty; undefined (the cold path) when the pool is off, closed, or its
   * refills are failing.
   */
  #next(key: PoolKey): Promise<ReadySandbox | undefined> {
    const slot = this.#slots.get(key);
    if (slot === undefined || this.options.size === 0 || this.#closed || slot.retryTimer !== undefined) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      slot.waiters.push(resolve);
      this.#refill(key);
    });
  }

  /** Sends every job waiting on `slot` down the cold path. */
  #releaseWaiters(slot: RuntimeSlot): void {
    for (const resolve of slot.waiters.splice(0)) resolve(undefined);
  }

  /** Whether the job can run in a pooled sandbox, which shows none of the image's tools. */
  async #fits(job: ExecutionJob): Promise<boolean> {
    return (await this.options.executor.exposedToolsFor(job.runtime, job.allowedBinaries ?? [])).length === 0;
  }

  /** Hands out a ready sandbox; it leaves the pool for good. */
  #take(key: PoolKey): ReadySandbox | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    let sandbox: ReadySandbox | undefined;
    while ((sandbox = slot.ready.shift()) !== undefined && !sandbox.alive) this.options.executor.discard(sandbox);
    if (slot.ready.length === 0) this.#refill(key);
    return sandbox;
  }

  stats(): WarmPoolStats {
    const ready: Partial<Record<PoolKey, number>> = {};
    const starting: Partial<Record<PoolKey, number>> = {};
    const waiting: Partial<Record<PoolKey, number>> = {};
    for (const [key, slot] of this.#slots) {
      ready[key] = slot.ready.length;
      starting[key] = slot.starting;
      waiting[key] = slot.waiters.length;
    }
    return { size: this.options.size, ready, starting, waiting, warmRuns: this.#warmRuns, coldRuns: this.#coldRuns, waitedRuns: this.#waitedRuns };
  }

  /** Resolves once every pool has `size` sandboxes ready (at once when the pool is disabled). */
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
    for (const slot of this.#slots.values()) {
      clearTimeout(slot.retryTimer);
      this.#releaseWaiters(slot);
    }
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

  /**
   * Starts what the slot lacks, paced: one sandbox at a time while no job
   * waits (a burst of container starts would take the CPU from running
   * programs), and one per waiting job while some do (each would otherwise
   * have made its own container on the cold path).
   */
  #refill(key: PoolKey): void {
    const slot = this.#slots.get(key);
    if (slot === undefined || this.#closed || slot.retryTimer !== undefined) return;
    const wanted = this.options.size + slot.waiters.length;
    const atOnce = Math.max(1, slot.waiters.length);
    while (slot.ready.length + slot.starting < wanted && slot.starting < atOnce) {
      slot.starting += 1;
      const starting = this.#startOne(key, slot).finally(() => {
        slot.starting -= 1;
        this.#starting.delete(starting);
        // Paced: the next one starts as this one is done.
        this.#refill(key);
      });
      this.#starting.add(starting);
    }
  }

  async #startOne(key: PoolKey, slot: RuntimeSlot): Promise<void> {
    let sandbox: ReadySandbox;
    try {
      sandbox = await this.options.executor.prepare(slot.runtime, slot.isolation, { [LABEL_POOL]: key });
    } catch (error) {
      if (this.#closed) return;
      // The engine is down or the image missing: jobs take the cold path (and
      // get its error); the pool tries again later instead of spinning.
      this.#releaseWaiters(slot);
      this.options.logger.warn({ pool: key, err: error instanceof Error ? error.message : String(error), retryMs: slot.retryDelay }, 'warm pool refill failed');
      if (slot.retryTimer === undefined) {
        slot.retryTimer = setTimeout(() => {
          slot.retryTimer = undefined;
          this.#refill(key);
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
    const waiter = slot.waiters.shift();
    if (waiter !== undefined) {
      waiter(sandbox);
      return;
    }
    slot.ready.push(sandbox);
    // A pooled sandbox whose container stops or whose stream closes (an
    // engine restart, a kill from outside) can never take a job: replace it
    // now, not when a job finds it.
    void sandbox.lost.then(() => {
      const at = slot.ready.indexOf(sandbox);
      if (at === -1) return;
      slot.ready.splice(at, 1);
      this.options.logger.warn({ pool: key, sandboxId: sandbox.id }, 'pooled sandbox stopped before its job');
      this.options.executor.discard(sandbox);
      this.#refill(key);
    });
    this.#notify();
  }
}
