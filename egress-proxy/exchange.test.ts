/**
 * The decision log line: URLs without their query (where credentials
 * travel), and past the session's network-log cap, sampled rather than one
 * line per request, while observers still see every decision.
 */
import { describe, expect, it } from 'vitest';
import { DECISION_LOG_MESSAGE, DECISION_LOG_SAMPLE_EVERY, Exchange } from './exchange.ts';
import { NetworkLog } from './network-log.ts';
import type { EgressDecision } from './types.ts';

function sinks(cap: number) {
  const lines: Record<string, unknown>[] = [];
  const decisions: EgressDecision[] = [];
  const log = new NetworkLog(cap);
  const logger = {
    info: (obj: object, msg?: string) => {
      if (msg === DECISION_LOG_MESSAGE) lines.push(obj as Record<string, unknown>);
    },
    warn: () => undefined,
    error: () => undefined,
  };
  return { lines, decisions, log, sinks: { log, logger, observers: [(d: EgressDecision) => void decisions.push(d)] } };
}

const exchange = (s: ReturnType<typeof sinks>, url: string) =>
  new Exchange({ executionId: 'e1', method: 'GET', url, hostname: 'api.example.com', port: 443, path: new URL(url).pathname }, s.sinks, () => undefined);

describe('decision log lines', () => {
  it('carry the URL without its query string or fragment; the network log keeps it for the caller', () => {
    const s = sinks(10);
    exchange(s, 'https://api.example.com/v1/items?api_key=sk_live_123&x=1#frag').finish({ statusCode: 200, blocked: false });
    expect(s.lines).toHaveLength(1);
    expect(s.lines[0]?.url).toBe('https://api.example.com/v1/items');
    expect(JSON.stringify(s.lines)).not.toContain('sk_live_123');
    expect(s.log.snapshot().entries[0]?.url).toContain('api_key=');
  });

  it('are sampled once the session has passed its network-log cap; observers still get every decision', () => {
    const cap = 3;
    const s = sinks(cap);
    const total = cap + 2 * DECISION_LOG_SAMPLE_EVERY + 5;
    for (let i = 0; i < total; i++) exchange(s, `https://api.example.com/n/${i}`).finish({ statusCode: 403, blocked: true, reason: 'no' });
    expect(s.decisions).toHaveLength(total);
    // Every line under the cap, then the first past it and each DECISION_LOG_SAMPLE_EVERY-th after.
    expect(s.lines.map((l) => l.url)).toEqual([
      ...[0, 1, 2].map((i) => `https://api.example.com/n/${i}`),
      ...[0, 1, 2].map((k) => `https://api.example.com/n/${cap + k * DECISION_LOG_SAMPLE_EVERY}`),
    ]);
    expect(s.lines.slice(cap).every((l) => l.sampled === DECISION_LOG_SAMPLE_EVERY)).toBe(true);
    expect(s.lines.slice(0, cap).some((l) => 'sampled' in l)).toBe(false);
  });
});
