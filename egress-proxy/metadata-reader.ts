/**
 * Reads registry metadata for the package closure without holding the event
 * loop every sandbox shares: a packument can be tens of MiB, and decoding and
 * parsing one takes hundreds of milliseconds. Small bodies (the common case)
 * are read inline, where a thread hop would cost more than the parse; larger
 * ones go to one worker thread, started on first use and stopped when idle.
 *
 * A worker that fails (a body that exhausts its heap, say) teaches nothing:
 * the facts are empty, so the closure does not grow and the request that
 * needed it is refused, never let through.
 */
import { Worker } from 'node:worker_threads';
import { readRegistryMetadata, type MetadataFacts, type RegistryMetadata } from '../policies/index.ts';
import type { MetadataJob } from './metadata-worker-thread.ts';

export interface MetadataReaderOptions {
  /** Bodies up to this size are read on the calling thread (default 256 KiB). */
  inlineMaxBytes?: number;
  /** The worker's heap ceiling in MiB (default 512): a hostile body fails there, not in the proxy. */
  workerHeapMb?: number;
  /** How long an idle worker is kept (default 60 s): starting one costs far more than a read. */
  idleMs?: number;
}

const NO_FACTS: MetadataFacts = { npm: [], pypi: [], fileUrls: [] };
const WORKER_URL = new URL('./metadata-worker.mjs', import.meta.url);

export class MetadataReader {
  readonly #inlineMaxBytes: number;
  readonly #workerHeapMb: number;
  readonly #idleMs: number;
  #worker: Worker | undefined;
  #nextId = 0;
  readonly #pending = new Map<number, (facts: MetadataFacts) => void>();
  #idleTimer: NodeJS.Timeout | undefined;
  /** Bodies read on the worker so far (for tests and diagnostics). */
  offThread = 0;

  constructor(options: MetadataReaderOptions = {}) {
    this.#inlineMaxBytes = options.inlineMaxBytes ?? 256 * 1024;
    this.#workerHeapMb = options.workerHeapMb ?? 512;
    this.#idleMs = options.idleMs ?? 60_000;
  }

  read(metadata: RegistryMetadata): Promise<MetadataFacts> {
    if (metadata.body.byteLength <= this.#inlineMaxBytes) return Promise.resolve(readRegistryMetadata(metadata));
    this.offThread += 1;
    const worker = this.#workerNow();
    const id = this.#nextId++;
    clearTimeout(this.#idleTimer);
    // Held open only while a read waits on it: an idle worker never keeps the process alive.
    worker.ref();
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      const job: MetadataJob = { id, metadata };
      worker.postMessage(job);
    });
  }

  /** Stops the worker; reads still waiting get no facts. */
  async close(): Promise<void> {
    clearTimeout(this.#idleTimer);
    const worker = this.#worker;
    this.#worker = undefined;
    this.#settleAll();
    await worker?.terminate();
  }

  #workerNow(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(WORKER_URL, {
      resourceLimits: { maxOldGenerationSizeMb: this.#workerHeapMb },
    });
    worker.unref();
    worker.on('message', ({ id, facts }: { id: number; facts: MetadataFacts }) => {
      this.#pending.get(id)?.(facts);
      this.#pending.delete(id);
      if (this.#pending.size > 0) return;
      worker.unref();
      this.#idleTimer = setTimeout(() => void this.close(), this.#idleMs).unref();
    });
    const fail = (): void => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#settleAll();
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    this.#worker = worker;
    return worker;
  }

  #settleAll(): void {
    for (const resolve of this.#pending.values()) resolve(NO_FACTS);
    this.#pending.clear();
  }
}
