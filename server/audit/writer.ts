/**
 * Gets records into the store off the request path: callers enqueue (a
 * push, never a wait), a background loop writes batches. The queue is
 * bounded: when the store is slow or down and the queue is full, new
 * records are dropped and counted, never waited for, so an execution is
 * never failed or slowed by its audit trail. A failed batch goes back to
 * the front of the queue (what no longer fits is dropped and counted) and
 * the loop backs off until the store answers again.
 */
import type { DecisionRecord, ExecutionRecord } from './records.ts';

export interface AuditSink {
  write(executions: readonly ExecutionRecord[], decisions: readonly DecisionRecord[]): Promise<void>;
}

export interface AuditWriterOptions {
  store: AuditSink;
  /** Most records waiting at once (AUDIT_QUEUE_LIMIT). */
  queueLimit: number;
  /** Most records per transaction (AUDIT_BATCH_SIZE). */
  batchSize: number;
  /** How long a record may wait for its batch to fill (AUDIT_FLUSH_MS). */
  flushMs: number;
  /** Longest pause between attempts while the store fails. */
  maxBackoffMs?: number;
  onError?: (error: unknown, consecutiveFailures: number) => void;
  onRecovered?: () => void;
}

type Item = { execution: ExecutionRecord } | { decision: DecisionRecord };
export type RecordKind = 'execution' | 'decision';

export interface AuditWriterStatus {
  queued: number;
  queueLimit: number;
  written: Record<RecordKind, number>;
  dropped: Record<RecordKind, number>;
  failedBatches: number;
  /** Whether the last write attempt succeeded (true before the first). */
  storeAvailable: boolean;
  lastError: string | null;
}

const kindOf = (item: Item): RecordKind => ('execution' in item ? 'execution' : 'decision');

export class AuditWriter {
  readonly #options: Required<Pick<AuditWriterOptions, 'maxBackoffMs'>> & AuditWriterOptions;
  #queue: Item[] = [];
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> | null = null;
  #failures = 0;
  #closed = false;
  readonly #written: Record<RecordKind, number> = { execution: 0, decision: 0 };
  readonly #dropped: Record<RecordKind, number> = { execution: 0, decision: 0 };
  #failedBatches = 0;
  #lastError: string | null = null;

  constructor(options: AuditWriterOptions) {
    this.#options = { maxBackoffMs: 5_000, ...options };
  }

  execution(record: ExecutionRecord): void {
    this.#enqueue({ execution: record });
  }

  decision(record: DecisionRecord): void {
    this.#enqueue({ decision: record });
  }

  status(): AuditWriterStatus {
    return {
      queued: this.#queue.length,
      queueLimit: this.#options.queueLimit,
      written: { ...this.#written },
      dropped: { ...this.#dropped },
      failedBatches: this.#failedBatches,
      storeAvailable: this.#failures === 0,
      lastError: this.#lastError,
    };
  }

  /** Writes everything queued now (tests, shutdown); resolves when that is done or has failed. */
  async flush(): Promise<void> {
    this.#cancelTimer();
    while (this.#writing !== null) await this.#writing;
    if (this.#queue.length > 0) await this.#writeBatches();
    this.#arm();
  }

  /** Stops taking records, writes what it can, and stops. */
  async close(): Promise<void> {
    await this.flush().catch(() => undefined);
    this.#closed = true;
    this.#cancelTimer();
  }

  #enqueue(item: Item): void {
    if (this.#closed || this.#queue.length >= this.#options.queueLimit) {
      this.#dropped[kindOf(item)] += 1;
      return;
    }
    this.#queue.push(item);
    if (this.#writing === null && this.#failures === 0 && this.#queue.length >= this.#options.batchSize) {
      this.#cancelTimer();
      this.#start();
    } else {
      this.#arm();
    }
  }

  #arm(): void {
    if (this.#timer !== null || this.#writing !== null || this.#queue.length === 0 || this.#closed) return;
    const delay = this.#failures === 0 ? this.#options.flushMs : Math.min(this.#options.maxBackoffMs, this.#options.flushMs * 2 ** this.#failures);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#start();
    }, delay);
    this.#timer.unref();
  }

  #cancelTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #start(): void {
    if (this.#writing !== null) return;
    this.#writing = this.#writeBatches().finally(() => {
      this.#writing = null;
      this.#arm();
    });
  }

  /** Writes batches until the queue is empty or a write fails. */
  async #writeBatches(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#options.batchSize);
      const executions: ExecutionRecord[] = [];
      const decisions: DecisionRecord[] = [];
      for (const item of batch) {
        if ('execution' in item) executions.push(item.execution);
        else decisions.push(item.decision);
      }
      try {
        await this.#options.store.write(executions, decisions);
      } catch (error) {
        this.#failures += 1;
        this.#failedBatches += 1;
        this.#lastError = error instanceof Error ? error.message : String(error);
        this.#requeue(batch);
        this.#options.onError?.(error, this.#failures);
        return;
      }
      this.#written.execution += executions.length;
      this.#written.decision += decisions.length;
      if (this.#failures > 0) {
        this.#failures = 0;
        this.#lastError = null;
        this.#options.onRecovered?.();
      }
    }
  }

  /** A failed batch goes back in front, as much of it as the queue has room for. */
  #requeue(batch: Item[]): void {
    const room = Math.max(0, this.#options.queueLimit - this.#queue.length);
    const kept = batch.slice(0, room);
    for (const item of batch.slice(room)) this.#dropped[kindOf(item)] += 1;
    this.#queue = [...kept, ...this.#queue];
  }
}
