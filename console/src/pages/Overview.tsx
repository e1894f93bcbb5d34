import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, metricsText, readiness, type Execution, type Readiness, type SummaryRow } from '../api.ts';
import { BarChart, ErrorNote, OutcomeBadge, PageTitle } from '../components.tsx';
import { bucketCounts, hrefWith, isoAgo, parseMetrics } from '../format.ts';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
const TOP_HOSTS = 8;

interface State {
  at: number;
  executions: Execution[];
  blockedHosts: Array<{ host: string; count: number; subjects: string[] }>;
  metrics: Map<string, number>;
  ready: Readiness | null;
}

function topBlockedHosts(rows: SummaryRow[]): State['blockedHosts'] {
  const hosts = new Map<string, { host: string; count: number; subjects: string[] }>();
  for (const row of rows) {
    if (row.decision === 'allowed') continue;
    const entry = hosts.get(row.host) ?? { host: row.host, count: 0, subjects: [] };
    entry.count += row.count;
    if (row.subject !== null && !entry.subjects.includes(row.subject)) entry.subjects.push(row.subject);
    hosts.set(row.host, entry);
  }
  return [...hosts.values()].sort((a, b) => b.count - a.count).slice(0, TOP_HOSTS);
}

export function Overview() {
  const [state, setState] = useState<State | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = useCallback(async () => {
    const at = Date.now();
    try {
      const [page, summary, metrics, ready] = await Promise.all([
        api.executions({ since: isoAgo(HOUR_MS, at), limit: 500 }),
        api.summary({ since: isoAgo(DAY_MS, at) }),
        metricsText().then(parseMetrics, () => new Map<string, number>()),
        readiness().catch(() => null),
      ]);
      setState({ at, executions: page.executions, blockedHosts: topBlockedHosts(summary.rows), metrics, ready });
      setError(null);
    } catch (failure) {
      setError(failure);
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  if (state === null) {
    return (
      <>
        <PageTitle>Overview</PageTitle>
        <ErrorNote error={error} />
        {error === null && <p class="muted">Loading…</p>}
      </>
    );
  }
  const perMinute = bucketCounts(state.executions.map((e) => ({ at: e.startedAt })), state.at, HOUR_MS, 60);
  const outcomes = new Map<string, number>();
  for (const e of state.executions) outcomes.set(e.outcome, (outcomes.get(e.outcome) ?? 0) + 1);
  const gauge = (name: string) => state.metrics.get(name) ?? null;
  const audit = state.ready?.details?.audit as { queued?: number; dropped?: Record<string, number>; storeAvailable?: boolean } | undefined;

  return (
    <>
      <PageTitle>Overview</PageTitle>
      <p>
        <button type="button" onClick={() => void load()}>
          Refresh
        </button>{' '}
        <span class="muted">as of {new Date(state.at).toLocaleTimeString(undefined, { hour12: false })}</span>
      </p>
      <ErrorNote error={error} />
      <div class="cards">
        <section class="card wide" aria-labelledby="rate-title">
          <h2 id="rate-title">Executions per minute</h2>
          <p class="big">{state.executions.length} in the last hour</p>
          <BarChart values={perMinute} labels={['60 min ago', 'now']} title="executions per minute" unit="executions" />
        </section>
        <section class="card" aria-labelledby="outcomes-title">
          <h2 id="outcomes-title">Outcomes (last hour)</h2>
          {outcomes.size === 0 ? (
            <p class="muted">No executions.</p>
          ) : (
            <ul class="plain">
              {[...outcomes].sort((a, b) => b[1] - a[1]).map(([outcome, count]) => (
                <li key={outcome}>
                  <a href={hrefWith('/executions', { outcome })}>
                    <OutcomeBadge outcome={outcome} />
                  </a>{' '}
                  {count}
                </li>
              ))}
            </ul>
          )}
        </section>
        <section class="card" aria-labelledby="hosts-title">
          <h2 id="hosts-title">Top blocked hosts (24 h)</h2>
          {state.blockedHosts.length === 0 ? (
            <p class="muted">Nothing blocked.</p>
          ) : (
            <ol class="plain">
              {state.blockedHosts.map((h) => (
                <li key={h.host}>
                  <strong>{h.host}</strong> {h.count}{' '}
                  {h.subjects.slice(0, 3).map((s) => (
                    <a key={s} class="chip" href={hrefWith('/blocked', { subject: s })}>
                      {s}
                    </a>
                  ))}
                </li>
              ))}
            </ol>
          )}
        </section>
        <section class="card" aria-labelledby="capacity-title">
          <h2 id="capacity-title">Pool and queue</h2>
          <dl class="fields compact">
            <div>
              <dt>Warm sandboxes</dt>
              <dd>{gauge('sandbox_pool_size') ?? '—'}</dd>
            </div>
            <div>
              <dt>Running</dt>
              <dd>{gauge('sandbox_executions_in_flight') ?? '—'}</dd>
            </div>
            <div>
              <dt>Queued</dt>
              <dd>{gauge('sandbox_queue_depth') ?? '—'}</dd>
            </div>
            <div>
              <dt>Audit queue</dt>
              <dd>{gauge('sandbox_audit_queue_depth') ?? audit?.queued ?? '—'}</dd>
            </div>
          </dl>
        </section>
        <section class="card" aria-labelledby="ready-title">
          <h2 id="ready-title">Readiness</h2>
          {state.ready === null ? (
            <p class="error">/readyz did not answer</p>
          ) : (
            <>
              <p>
                <span class={`badge ${state.ready.status === 'ready' ? 'allowed' : 'blocked'}`}>{state.ready.status}</span>
              </p>
              <ul class="plain">
                {Object.entries(state.ready.checks).map(([name, value]) => (
                  <li key={name}>
                    {name}: <span class={value === 'ok' ? 'ok' : 'error'}>{value}</span>
                  </li>
                ))}
                {state.ready.isolation !== undefined && <li>isolation: {state.ready.isolation.join(', ') || 'none'}</li>}
                {audit?.storeAvailable !== undefined && (
                  <li>
                    audit store: <span class={audit.storeAvailable ? 'ok' : 'error'}>{audit.storeAvailable ? 'ok' : 'unavailable'}</span>
                  </li>
                )}
              </ul>
            </>
          )}
        </section>
      </div>
    </>
  );
}
