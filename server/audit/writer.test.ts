import { describe, expect, it } from 'vitest';
import type { DecisionRecord, ExecutionRecord } from './records.ts';
import { AuditWriter, type AuditSink } from './writer.ts';

const decision = (n: number): DecisionRecord => ({
  executionId: 'e', at: n, method: 'GET', scheme: 'https', host: 'h', port: 443, path: `/${n}`, allowed: true, wouldBlock: false,
  reason: null, rule: null, statusCode: 200, secrets: [], durationMs: 1,
});
const execution = { id: 'e' } as ExecutionRecord;

/** A store that fails while `down` and records the batches it was given. */
class FakeStore implements AuditSink {
  down = false;
  batches: Array<{ executions: number; decisions: number[] }> = [];
  write(executions: readonly ExecutionRecord[], decisions: readonly DecisionRecord[]): Promise<void> {
    if (this.down) return Promise.reject(new Error('store down'));
    this.batches.push({ executions: executions.length, decisions: decisions.map((d) => d.at) });
    return Promise.resolve();
  }
}

async function eventually(check: () => void): Promise<void> {
  for (let i = 0; ; i += 1) {
    try {
      check();
      return;
    } catch (error) {
      if (i > 500) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

describe('AuditWriter', () => {
  it('writes in batches of at most batchSize, in order, in the background', async () => {
    const store = new FakeStore();
    const writer = new AuditWriter({ store, queueLimit: 100, batchSize: 3, flushMs: 5 });
    writer.execution(execution);
    for (let i = 0; i < 7; i += 1) writer.decision(decision(i));
    await eventually(() => expect(writer.status().written).toEqual({ execution: 1, decision: 7 }));
    expect(store.batches.every((b) => b.executions + b.decisions.length <= 3)).toBe(true);
    expect(store.batches.flatMap((b) => b.decisions)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    await writer.close();
  });

  it('drops and counts what does not fit while the store is down, and writes the rest once it is back', async () => {
    const store = new FakeStore();
    store.down = true;
    const writer = new AuditWriter({ store, queueLimit: 4, batchSize: 2, flushMs: 1, maxBackoffMs: 5 });
    for (let i = 0; i < 10; i += 1) writer.decision(decision(i));
    await eventually(() => expect(writer.status().failedBatches).toBeGreaterThan(0));
    const status = writer.status();
    expect(status.dropped.decision).toBe(6);
    expect(status.storeAvailable).toBe(false);
    expect(status.lastError).toBe('store down');
    store.down = false;
    await eventually(() => expect(writer.status().written.decision).toBe(4));
    // The failed first batch found the queue full behind it: the newest records kept their places.
    expect(store.batches.flatMap((b) => b.decisions)).toEqual([2, 3, 4, 5]);
    expect(writer.status().storeAvailable).toBe(true);
    writer.decision(decision(42));
    await eventually(() => expect(writer.status().written.decision).toBe(5));
    await writer.close();
  });

  it('never makes the caller wait: enqueueing returns while a write hangs', async () => {
    let release: () => void = () => undefined;
    let released = false;
    const hanging: AuditSink = {
      write: () => (released ? Promise.resolve() : new Promise<void>((resolve) => (release = resolve))),
    };
    const writer = new AuditWriter({ store: hanging, queueLimit: 2, batchSize: 1, flushMs: 1 });
    writer.decision(decision(1));
    await eventually(() => expect(writer.status().queued).toBe(0));
    for (let i = 0; i < 5; i += 1) writer.decision(decision(i));
    expect(writer.status()).toMatchObject({ queued: 2, dropped: { decision: 3, execution: 0 } });
    released = true;
    release();
    await writer.flush();
    expect(writer.status().written.decision).toBe(3);
  });
});
