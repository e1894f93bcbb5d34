import { describe, expect, it } from 'vitest';
import { Admission, CapacityError } from './admission.ts';

const refusal = (promise: Promise<unknown>) => promise.then(() => null, (error: unknown) => error);

describe('Admission', () => {
  it('admits up to maxConcurrent at once, then queues first come, first served', async () => {
    const admission = new Admission({ maxConcurrent: 1, queueLimit: 2, queueTimeoutMs: 5_000 });
    const first = await admission.acquire();
    expect(first.queuedMs).toBe(0);
    const order: string[] = [];
    const second = admission.acquire().then((slot) => (order.push('second'), slot));
    const third = admission.acquire().then((slot) => (order.push('third'), slot));
    expect(admission.queued).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 20));
    first.release();
    (await second).release();
    const slot = await third;
    expect(order).toEqual(['second', 'third']);
    expect(slot.queuedMs).toBeGreaterThanOrEqual(15);
    slot.release();
    expect(admission.running).toBe(0);
  });

  it('refuses at once when the queue is full, with a Retry-After of at least a second', async () => {
    const admission = new Admission({ maxConcurrent: 1, queueLimit: 1, queueTimeoutMs: 5_000 });
    const held = await admission.acquire();
    const queued = admission.acquire();
    const error = await refusal(admission.acquire());
    expect(error).toBeInstanceOf(CapacityError);
    expect((error as CapacityError).code).toBe('QUEUE_FULL');
    expect((error as CapacityError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    held.release();
    (await queued).release();
  });

  it('gives up a wait at the smaller of its own bound and the queue timeout', async () => {
    const admission = new Admission({ maxConcurrent: 1, queueLimit: 5, queueTimeoutMs: 5_000 });
    const held = await admission.acquire();
    const error = await refusal(admission.acquire(30));
    expect((error as CapacityError).code).toBe('QUEUE_TIMEOUT');
    expect(admission.queued).toBe(0);
    held.release();
    expect(admission.running).toBe(0);
  });

  it('drops a waiter whose caller went away, and a double release frees one slot only', async () => {
    const admission = new Admission({ maxConcurrent: 1, queueLimit: 5, queueTimeoutMs: 5_000 });
    const held = await admission.acquire();
    const gone = new AbortController();
    const waiting = refusal(admission.acquire(Infinity, gone.signal));
    gone.abort(new Error('client closed'));
    expect(((await waiting) as Error).message).toBe('client closed');
    expect(admission.queued).toBe(0);
    held.release();
    held.release();
    expect(admission.running).toBe(0);
  });

  it('caps what one caller holds, running or queued, so it cannot take every slot', async () => {
    const admission = new Admission({ maxConcurrent: 4, queueLimit: 4, queueTimeoutMs: 5_000, perCallerMax: 2 });
    const a1 = await admission.acquire(undefined, undefined, 'sub:alice');
    const a2 = await admission.acquire(undefined, undefined, 'sub:alice');
    const error = await refusal(admission.acquire(undefined, undefined, 'sub:alice'));
    expect(error).toBeInstanceOf(CapacityError);
    expect(error).toMatchObject({ code: 'CALLER_BUSY' });
    expect((error as CapacityError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    // Others still find slots; alice gets hers back as she releases.
    const b1 = await admission.acquire(undefined, undefined, 'sub:bob');
    a1.release();
    a1.release();
    const a3 = await admission.acquire(undefined, undefined, 'sub:alice');
    for (const slot of [a2, a3, b1]) slot.release();
    expect(admission.running).toBe(0);
  });

  it('gives the caller its place back when a queued request is refused', async () => {
    const admission = new Admission({ maxConcurrent: 1, queueLimit: 0, queueTimeoutMs: 5_000, perCallerMax: 1 });
    const held = await admission.acquire(undefined, undefined, 'sub:bob');
    expect(await refusal(admission.acquire(undefined, undefined, 'sub:carol'))).toMatchObject({ code: 'QUEUE_FULL' });
    held.release();
    (await admission.acquire(undefined, undefined, 'sub:carol')).release();
  });
});
