/**
 * Prometheus metrics at `GET /metrics` (DESIGN §8). Each service has its own
 * registry, so several services in one process (the tests) never share or
 * clash over counters.
 *
 * The endpoint is open on the listen address, like /healthz: it carries
 * counts and durations only, no subjects, hosts or tokens. Operators who
 * listen beyond loopback keep it off the public path at their proxy.
 */
import { Router } from 'express';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { countDecisions, type DecisionObserver } from '../egress-proxy/index.ts';
import type { PolicyCacheStats } from '../policies/index.ts';

export const METRICS_PATH = '/metrics';

/** How one /execute request ended, as the executions counter labels it. */
export type ExecutionOutcome = 'ok' | 'nonzero_exit' | 'timeout' | 'oom' | 'rejected' | 'error';

/**
 * Capacity figures fed by whoever owns them (the admission queue, the warm
 * pool); read at scrape time. A figure not fed is reported as 0.
 */
export interface CapacitySource {
  queueDepth?: () => number;
  poolSize?: () => number;
  /** Executions waiting for a warm sandbox that is being made (rather than starting one cold). */
  poolWaiting?: () => number;
  /** Executions running right now. */
  inFlight?: () => number;
}

/** Every isolation tier a deployment may offer, each reported as available (1) or not (0). */
const ISOLATION_TIER_NAMES = ['gvisor', 'runc'] as const;

export interface ServiceMetricsOptions {
  policyStats: () => PolicyCacheStats;
  capacity?: CapacitySource;
  /** The tiers sandboxes run under; read at scrape time (none until the service has chosen). */
  isolation?: { available?: () => readonly string[] };
}

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #executions: Counter<'outcome'>;
  readonly #duration: Histogram<'outcome'>;
  /**
   * Counts the in-process proxy's decisions: hand it to the proxy as its
   * decision observer. (In remote mode the proxy service counts its own.)
   */
  readonly egressDecisions: DecisionObserver;

  constructor(options: ServiceMetricsOptions) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#executions = new Counter({
      name: 'sandbox_executions_total',
      help: '/execute requests by outcome: ok, nonzero_exit, timeout, oom (the program ran); rejected (refused with a 4xx/503 before or while running); error',
      labelNames: ['outcome'],
      registers,
    });
    this.#duration = new Histogram({
      name: 'sandbox_execution_duration_seconds',
      help: 'Wall-clock run time of programs in their sandbox',
      labelNames: ['outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.egressDecisions = countDecisions(this.registry);
    const capacity = options.capacity ?? {};
    const gauge = (name: string, help: string, read: (() => number) | undefined) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read?.() ?? 0);
        },
      });
    gauge('sandbox_queue_depth', 'Executions waiting for admission', () => capacity.queueDepth?.() ?? 0);
    gauge('sandbox_pool_size', 'Warm sandboxes ready to take an execution', () => capacity.poolSize?.() ?? 0);
    gauge('sandbox_pool_waiting', 'Executions waiting for a warm sandbox being made', () => capacity.poolWaiting?.() ?? 0);
    gauge('sandbox_executions_in_flight', 'Executions running now', () => capacity.inFlight?.() ?? 0);
    const isolation = options.isolation ?? {};
    new Gauge({
      name: 'sandbox_isolation_available',
      help: 'Isolation tiers this deployment runs sandboxes under (1) or not (0): gvisor (runsc), runc',
      labelNames: ['tier'],
      registers,
      collect() {
        const available = isolation.available?.() ?? [];
        for (const tier of ISOLATION_TIER_NAMES) this.set({ tier }, available.includes(tier) ? 1 : 0);
      },
    });
    // The fetcher keeps its own counts; these mirror them at scrape time.
    const policyCounter = (name: string, help: string, pick: (s: PolicyCacheStats) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(pick(options.policyStats()));
        },
      });
    policyCounter('sandbox_policy_cache_hits_total', 'Policy look-ups answered from the cache', (s) => s.hits);
    policyCounter('sandbox_policy_cache_misses_total', 'Policy look-ups that went to the policy API', (s) => s.misses);
    policyCounter('sandbox_policy_fetch_failures_total', 'Policy fetches that failed (the default policy was used)', (s) => s.failures);
    gauge('sandbox_policy_cache_entries', 'Policies in the cache', () => options.policyStats().size);
  }

  execution(outcome: ExecutionOutcome, durationMs?: number): void {
    this.#executions.inc({ outcome });
    if (durationMs !== undefined) this.#duration.observe({ outcome }, durationMs / 1000);
  }

  router(): Router {
    const router = Router();
    router.get(METRICS_PATH, async (_req, res) => {
      res.set('Content-Type', this.registry.contentType).send(await this.registry.metrics());
    });
    return router;
  }
}
