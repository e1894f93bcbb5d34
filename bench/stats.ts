/** Summaries of latency samples and the small timing helpers every bench section shares. */

export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
}

/** Nearest-rank percentiles (ms), rounded to 0.01 ms. */
export function summarise(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
  const round = (v: number) => Math.round(v * 100) / 100;
  const mean = sorted.reduce((sum, v) => sum + v, 0) / Math.max(1, sorted.length);
  return { n: sorted.length, p50: round(at(50)), p95: round(at(95)), p99: round(at(99)), mean: round(mean) };
}

/** Runs `fn` `n` times one after another and returns each duration in ms. */
export async function timeSequential(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  return samples;
}

export interface LoadResult {
  concurrency: number;
  durationMs: number;
  completed: number;
  failed: number;
  perSecond: number;
  latency: Summary;
}

/**
 * `concurrency` workers call `fn` back to back until `durationMs` has passed;
 * operations still running then are waited for but not counted.
 */
export async function closedLoop(concurrency: number, durationMs: number, fn: () => Promise<boolean>): Promise<LoadResult> {
  const samples: number[] = [];
  let failed = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      const ok = await fn().catch(() => false);
      const t1 = performance.now();
      if (t1 > deadline) break;
      if (ok) samples.push(t1 - t0);
      else failed += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = Math.min(performance.now(), deadline) - start;
  return {
    concurrency,
    durationMs: Math.round(elapsed),
    completed: samples.length,
    failed,
    perSecond: Math.round((samples.length / (elapsed / 1000)) * 10) / 10,
    latency: summarise(samples),
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
