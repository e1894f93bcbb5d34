import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, type Execution, type ExecutionFilters } from '../api.ts';
import { ErrorNote, OutcomeBadge, PageTitle } from '../components.tsx';
import { formatMs, formatTime, hasBlocked, hrefWith, OUTCOMES } from '../format.ts';

const LIVE_REFRESH_MS = 5000;
/** Blocked rows show their reasons; each is one detail request, so only the first rows of a page get them. */
const REASON_LOOKUPS = 50;

interface Filters {
  subject: string;
  outcome: string;
  since: string;
  until: string;
  blocked: boolean;
}

const toIso = (local: string): string | undefined => (local === '' ? undefined : new Date(local).toISOString());

export function Executions({ params }: { params: URLSearchParams }) {
  const [filters, setFilters] = useState<Filters>({
    subject: params.get('subject') ?? '',
    outcome: params.get('outcome') ?? '',
    since: '',
    until: '',
    blocked: params.get('blocked') === 'true',
  });
  const [applied, setApplied] = useState(filters);
  const [rows, setRows] = useState<Execution[]>([]);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [reasons, setReasons] = useState<Record<string, string[]>>({});
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [live, setLive] = useState(false);
  const [loadedAt, setLoadedAt] = useState<Date | null>(null);
  const reasonCache = useRef(new Map<string, string[]>());

  const query = useCallback(
    (cursor?: string): ExecutionFilters => ({
      subject: applied.subject.trim() || undefined,
      outcome: applied.outcome || undefined,
      since: toIso(applied.since),
      until: toIso(applied.until),
      blocked: applied.blocked,
      limit: 50,
      cursor,
    }),
    [applied],
  );

  const lookUpReasons = useCallback(async (executions: Execution[]) => {
    const wanted = executions.filter((e) => hasBlocked(e) && !reasonCache.current.has(e.id)).slice(0, REASON_LOOKUPS);
    await Promise.all(
      wanted.map(async (e) => {
        const detail = await api.execution(e.id).catch(() => null);
        if (detail === null) return;
        const found = [...new Set(detail.decisions.filter((d) => !d.allowed || d.wouldBlock).map((d) => d.reason ?? '(no reason recorded)'))];
        reasonCache.current.set(e.id, found);
      }),
    );
    setReasons(Object.fromEntries(reasonCache.current));
  }, []);

  const load = useCallback(async () => {
    setLoading(true);
    try {
      const page = await api.executions(query());
      setRows(page.executions);
      setNextCursor(page.nextCursor);
      setError(null);
      setLoadedAt(new Date());
      await lookUpReasons(page.executions);
    } catch (failure) {
      setError(failure);
    } finally {
      setLoading(false);
    }
  }, [query, lookUpReasons]);

  const more = async () => {
    if (nextCursor === null) return;
    try {
      const page = await api.executions(query(nextCursor));
      setRows((current) => [...current, ...page.executions]);
      setNextCursor(page.nextCursor);
      await lookUpReasons(page.executions);
    } catch (failure) {
      setError(failure);
    }
  };

  useEffect(() => {
    void load();
  }, [load]);

  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => void load(), LIVE_REFRESH_MS);
    return () => clearInterval(timer);
  }, [live, load]);

  const set = <K extends keyof Filters>(key: K, value: Filters[K]) => setFilters((f) => ({ ...f, [key]: value }));

  return (
    <>
      <PageTitle>Executions</PageTitle>
      <form
        class="filters"
        aria-label="Filter executions"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(filters);
        }}
      >
        <label>
          Subject
          <input name="subject" value={filters.subject} onInput={(e) => set('subject', e.currentTarget.value)} placeholder="any" />
        </label>
        <label>
          Outcome
          <select name="outcome" value={filters.outcome} onChange={(e) => set('outcome', e.currentTarget.value)}>
            <option value="">any</option>
            {OUTCOMES.map((o) => (
              <option key={o} value={o}>
                {o}
              </option>
            ))}
          </select>
        </label>
        <label>
          From
          <input name="since" type="datetime-local" value={filters.since} onInput={(e) => set('since', e.currentTarget.value)} />
        </label>
        <label>
          To
          <input name="until" type="datetime-local" value={filters.until} onInput={(e) => set('until', e.currentTarget.value)} />
        </label>
        <label class="check">
          <input name="blocked" type="checkbox" checked={filters.blocked} onChange={(e) => set('blocked', e.currentTarget.checked)} />
          Blocked only
        </label>
        <button type="submit">Apply</button>
        <button type="button" onClick={() => void load()} disabled={loading}>
          Refresh
        </button>
        <label class="check">
          <input type="checkbox" checked={live} onChange={(e) => setLive(e.currentTarget.checked)} />
          Live
        </label>
      </form>
      <ErrorNote error={error} />
      <p class="muted" aria-live="polite">
        {loading ? 'Loading…' : loadedAt === null ? '' : `${rows.length} execution(s), as of ${loadedAt.toLocaleTimeString(undefined, { hour12: false })}`}
      </p>
      <div class="table-wrap">
        <table class="executions">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Subject</th>
              <th scope="col" class="wide-only">Language</th>
              <th scope="col" class="wide-only">Tier</th>
              <th scope="col">Outcome</th>
              <th scope="col" class="wide-only">Duration</th>
              <th scope="col" class="wide-only">Allowed</th>
              <th scope="col">Blocked</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.id} class={hasBlocked(e) ? 'blocked' : ''} data-execution-id={e.id}>
                <td>
                  <a href={`#/executions/${encodeURIComponent(e.id)}`} title={`Execution ${e.id}`}>
                    {formatTime(e.startedAt)}
                  </a>
                </td>
                <td>{e.subject === null ? <span class="muted">(no token)</span> : <a href={hrefWith('/executions', { subject: e.subject })}>{e.subject}</a>}</td>
                <td class="wide-only">{e.language}</td>
                <td class="wide-only">{e.tier ?? '—'}</td>
                <td>
                  <OutcomeBadge outcome={e.outcome} />
                </td>
                <td class="num wide-only">{formatMs(e.durationMs)}</td>
                <td class="num wide-only">{e.allowedRequests}</td>
                <td class="blocked-cell">
                  {hasBlocked(e) ? (
                    <>
                      <span class="badge blocked">
                        {e.blockedRequests > 0 ? `${e.blockedRequests} blocked` : ''}
                        {e.blockedRequests > 0 && e.wouldBlockRequests > 0 ? ', ' : ''}
                        {e.wouldBlockRequests > 0 ? `${e.wouldBlockRequests} would block` : ''}
                      </span>
                      <ul class="reasons">
                        {(reasons[e.id] ?? []).map((r) => (
                          <li key={r}>{r}</li>
                        ))}
                      </ul>
                    </>
                  ) : (
                    <span class="muted">0</span>
                  )}
                </td>
              </tr>
            ))}
            {rows.length === 0 && !loading && (
              <tr>
                <td colSpan={8} class="muted">
                  No executions match.
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {nextCursor !== null && (
        <button type="button" onClick={() => void more()}>
          Load more
        </button>
      )}
    </>
  );
}
