/**
 * Egress decisions as a Prometheus counter, by result and by what decided.
 * One definition for both deployments: the API registers it when the proxy
 * runs in-process, the standalone proxy service on its own /metrics.
 */
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';
import type { DecisionObserver } from './types.ts';

export const DECISIONS_METRIC = 'sandbox_egress_decisions_total';

/**
 * The bounded label for why the proxy decided as it did: the policy section
 * whose rule decided (`allowedDomains`, `blockedDomains`, `apiPathRules`,
 * `default`) or the proxy's own refusal (`proxy:destination-address`…),
 * never the host or path, which would grow without bound.
 */
export function decisionReasonLabel(rule: string | null): string {
  if (rule === null || rule === '') return 'unknown';
  if (rule.startsWith('proxy:')) return rule;
  return /^[A-Za-z]+/u.exec(rule)?.[0] ?? 'unknown';
}

/** Registers the counter in `registry` and returns the observer that feeds it. */
export function countDecisions(registry: Registry): DecisionObserver {
  const counter = new Counter({
    name: DECISIONS_METRIC,
    help: 'Egress proxy decisions by result (allowed, blocked) and the policy section or proxy check that decided',
    labelNames: ['result', 'reason'],
    registers: [registry],
  });
  return (decision) => counter.inc({ result: decision.allowed ? 'allowed' : 'blocked', reason: decisionReasonLabel(decision.rule) });
}
