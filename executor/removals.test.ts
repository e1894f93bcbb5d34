import { describe, expect, it } from 'vitest';
import { RemovalQueue } from './removals.ts';

describe('RemovalQueue', () => {
  it('drains at once when empty', async () => {
    await new RemovalQueue({ concurrency: 2 }).drain();
  });

  it('goes on past a removal that failed, and drain() waits for removals queued while it waits', async () => {
    const queue = new RemovalQueue({ concurrency: 1 });
    const done: string[] = [];
    queue.add(() => Promise.reject(new Error('engine said no')));
    queue.add(async () => {
      done.push('second');
      await Promise.resolve();
      queue.add(async () => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        done.push('queued during the drain');
      });
    });
    await queue.drain();
    expect(done).toEqual(['second', 'queued during the drain']);
    expect(queue.size).toBe(0);
  });
});
