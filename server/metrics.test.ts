/**
 * The capacity gauges read their sources at scrape time: what the admission
 * queue and the warm pool report then is what /metrics shows.
 */
import { describe, expect, it } from 'vitest';
import { ServiceMetrics } from './metrics.ts';

const NO_POLICY_STATS = { hits: 0, misses: 0, fetches: 0, failures: 0, size: 0 };

function gaugeValue(text: string, name: string): number | undefined {
  const line = new RegExp(`^${name} (\\S+)$`, 'mu').exec(text);
  return line?.[1] === undefined ? undefined : Number(line[1]);
}

describe('ServiceMetrics capacity gauges', () => {
  it('reports the pool’s ready sandboxes and the executions waiting for one, as they stand at each scrape', async () => {
    const figures = { ready: 2, waiting: 0 };
    const metrics = new ServiceMetrics({
      policyStats: () => NO_POLICY_STATS,
      capacity: { poolSize: () => figures.ready, poolWaiting: () => figures.waiting, queueDepth: () => 1, inFlight: () => 4 },
    });
    const first = await metrics.registry.metrics();
    expect(gaugeValue(first, 'sandbox_pool_size')).toBe(2);
    expect(gaugeValue(first, 'sandbox_pool_waiting')).toBe(0);

    figures.ready = 0;
    figures.waiting = 3;
    const second = await metrics.registry.metrics();
    expect(gaugeValue(second, 'sandbox_pool_size')).toBe(0);
    expect(gaugeValue(second, 'sandbox_pool_waiting')).toBe(3);
    expect(gaugeValue(second, 'sandbox_queue_depth')).toBe(1);
    expect(gaugeValue(second, 'sandbox_executions_in_flight')).toBe(4);
  });

  it('reports a figure nobody feeds as 0', async () => {
    const metrics = new ServiceMetrics({ policyStats: () => NO_POLICY_STATS });
    expect(gaugeValue(await metrics.registry.metrics(), 'sandbox_pool_waiting')).toBe(0);
  });
});
