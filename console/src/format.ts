/** Small pure helpers the pages share. */
import type { Decision, Execution } from './api.ts';

export const SINCE_CHOICES = [
  { label: 'last hour', ms: 60 * 60 * 1000 },
  { label: 'last 24 hours', ms: 24 * 60 * 60 * 1000 },
  { label: 'last 7 days', ms: 7 * 24 * 60 * 60 * 1000 },
  { label: 'last 30 days', ms: 30 * 24 * 60 * 60 * 1000 },
] as const;

export const OUTCOMES = ['ok', 'nonzero_exit', 'timeout', 'oom', 'rejected', 'error'] as const;

export const isoAgo = (ms: number, now = Date.now()): string => new Date(now - ms).toISOString();

export function formatTime(iso: string | null): string {
  if (iso === null) return '—';
  const date = new Date(iso);
  return `${date.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })} ${date.toLocaleTimeString(undefined, { hour12: false })}`;
}

export const formatMs = (ms: number | null): string => (ms === null ? '—' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`);

export function decisionUrl(d: Pick<Decision, 'scheme' | 'host' | 'port' | 'path'>): string {
  const defaultPort = d.scheme === 'https' ? 443 : 80;
  return `${d.scheme}://${d.host}${d.port === defaultPort ? '' : `:${d.port}`}${d.path}`;
}

export type DecisionState = 'allowed' | 'blocked' | 'wouldBlock';
export const decisionState = (d: Pick<Decision, 'allowed' | 'wouldBlock'>): DecisionState => (!d.allowed ? 'blocked' : d.wouldBlock ? 'wouldBlock' : 'allowed');
export const DECISION_LABEL: Record<DecisionState, string> = { allowed: 'allowed', blocked: 'blocked', wouldBlock: 'would block' };

export const hasBlocked = (e: Pick<Execution, 'blockedRequests' | 'wouldBlockRequests'>): boolean => e.blockedRequests + e.wouldBlockRequests > 0;

/** Counts of `times` in `buckets` equal slices ending at `end`. */
export function bucketCounts(items: Array<{ at: string | null; weight?: number }>, end: number, spanMs: number, buckets: number): number[] {
  const counts = new Array<number>(buckets).fill(0);
  const start = end - spanMs;
  for (const item of items) {
    if (item.at === null) continue;
    const t = Date.parse(item.at);
    if (t < start || t > end) continue;
    const index = Math.min(buckets - 1, Math.floor(((t - start) / spanMs) * buckets));
    counts[index] = (counts[index] ?? 0) + (item.weight ?? 1);
  }
  return counts;
}

/** Gauges and counters from a Prometheus text exposition: `name{labels}` → value. */
export function parseMetrics(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const value = Number(line.slice(space + 1));
    if (!Number.isNaN(value)) values.set(line.slice(0, space), value);
  }
  return values;
}

/** Query parameters of the hash route (`#/blocked?subject=x`). */
export function routeParams(hash: string): { path: string; params: URLSearchParams } {
  const raw = hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  return { path: q === -1 ? raw : raw.slice(0, q), params: new URLSearchParams(q === -1 ? '' : raw.slice(q + 1)) };
}

export function hrefWith(path: string, params: Record<string, string | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(key, value);
  const text = search.toString();
  return `#${path}${text === '' ? '' : `?${text}`}`;
}
