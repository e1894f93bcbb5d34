import { useEffect, useState } from 'preact/hooks';
import { api, type Execution, type Suggestion, type SummaryRow } from '../api.ts';
import { BarChart, ErrorNote, PageTitle } from '../components.tsx';
import { bucketCounts, hrefWith, isoAgo, SINCE_CHOICES } from '../format.ts';

const CHART_BUCKETS = 24;

interface HostGroup {
  host: string;
  total: number;
  reasons: Array<{ reason: string; methods: string[]; count: number; wouldBlock: boolean }>;
}

function groupByHost(rows: SummaryRow[]): HostGroup[] {
  const hosts = new Map<string, HostGroup>();
  for (const row of rows) {
    if (row.decision === 'allowed') continue;
    const group = hosts.get(row.host) ?? { host: row.host, total: 0, reasons: [] };
    const reason = row.reason ?? '(no reason recorded)';
    const wouldBlock = row.decision === 'wouldBlock';
    const entry = group.reasons.find((r) => r.reason === reason && r.wouldBlock === wouldBlock);
    if (entry === undefined) group.reasons.push({ reason, methods: [row.method], count: row.count, wouldBlock });
    else {
      entry.count += row.count;
      if (!entry.methods.includes(row.method)) entry.methods.push(row.method);
    }
    group.total += row.count;
    hosts.set(row.host, group);
  }
  return [...hosts.values()].sort((a, b) => b.total - a.total);
}

export function Blocked({ params }: { params: URLSearchParams }) {
  const [subject, setSubject] = useState(params.get('subject') ?? '');
  const [windowIndex, setWindowIndex] = useState(1);
  const [shown, setShown] = useState({ subject: params.get('subject') ?? '', windowIndex: 1 });
  const [groups, setGroups] = useState<HostGroup[] | null>(null);
  const [executions, setExecutions] = useState<Execution[]>([]);
  const [suggestion, setSuggestion] = useState<Suggestion | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [now, setNow] = useState(Date.now());
  const span = SINCE_CHOICES[shown.windowIndex]?.ms ?? SINCE_CHOICES[1].ms;

  useEffect(() => {
    if (shown.subject === '') return;
    const at = Date.now();
    const since = isoAgo(span, at);
    setNow(at);
    setError(null);
    setSuggestion(null);
    Promise.all([
      api.summary({ subject: shown.subject, since }),
      api.executions({ subject: shown.subject, since, blocked: true, limit: 500 }),
      api.suggestion(shown.subject, { since, blockedOnly: true }),
    ]).then(([summary, page, suggested]) => {
      setGroups(groupByHost(summary.rows));
      setExecutions(page.executions);
      setSuggestion(suggested);
    }, setError);
  }, [shown, span]);

  const counts = bucketCounts(
    executions.map((e) => ({ at: e.startedAt, weight: e.blockedRequests + e.wouldBlockRequests })),
    now,
    span,
    CHART_BUCKETS,
  );

  return (
    <>
      <PageTitle>Blocked requests</PageTitle>
      <form
        class="filters"
        aria-label="Choose a subject"
        onSubmit={(e) => {
          e.preventDefault();
          setShown({ subject: subject.trim(), windowIndex });
        }}
      >
        <label>
          Subject
          <input name="subject" required value={subject} onInput={(e) => setSubject(e.currentTarget.value)} />
        </label>
        <label>
          Window
          <select name="window" value={String(windowIndex)} onChange={(e) => setWindowIndex(Number(e.currentTarget.value))}>
            {SINCE_CHOICES.map((c, i) => (
              <option key={c.label} value={String(i)}>
                {c.label}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Show</button>
      </form>
      <ErrorNote error={error} />
      {shown.subject === '' && <p class="muted">Name a subject (a JWT sub) to see what its code tried to reach and was refused.</p>}
      {shown.subject !== '' && groups !== null && (
        <>
          <section aria-labelledby="over-time">
            <h2 id="over-time">Over time</h2>
            <BarChart values={counts} labels={[SINCE_CHOICES[shown.windowIndex]?.label ?? '', 'now']} title="blocked requests" unit="blocked" />
          </section>
          <section aria-labelledby="by-host">
            <h2 id="by-host">By host and reason</h2>
            {groups.length === 0 ? (
              <p class="muted">Nothing was blocked for {shown.subject} in this window.</p>
            ) : (
              <div class="table-wrap">
                <table class="groups">
                  <thead>
                    <tr>
                      <th scope="col">Host</th>
                      <th scope="col">Reason</th>
                      <th scope="col">Methods</th>
                      <th scope="col">Count</th>
                    </tr>
                  </thead>
                  <tbody>
                    {groups.flatMap((g) =>
                      g.reasons.map((r, i) => (
                        <tr key={`${g.host} ${r.reason} ${r.wouldBlock}`} class="blocked">
                          {i === 0 && (
                            <th scope="rowgroup" rowSpan={g.reasons.length}>
                              {g.host}
                              <span class="muted"> ({g.total})</span>
                            </th>
                          )}
                          <td>
                            {r.reason}
                            {r.wouldBlock && <span class="badge wouldBlock">would block</span>}
                          </td>
                          <td>{r.methods.join(', ')}</td>
                          <td class="num">{r.count}</td>
                        </tr>
                      )),
                    )}
                  </tbody>
                </table>
              </div>
            )}
          </section>
          {suggestion !== null && <SuggestionView suggestion={suggestion} />}
        </>
      )}
    </>
  );
}

function SuggestionView({ suggestion }: { suggestion: Suggestion }) {
  const { addedDomains, addedRules } = suggestion.diff;
  return (
    <section aria-labelledby="suggestion-title">
      <h2 id="suggestion-title">Suggested policy change</h2>
      <p class="muted">
        The smallest change to {suggestion.subject}'s policy that would allow what was blocked ({suggestion.decisionsSeen} decision(s) seen).{' '}
        <a href={hrefWith('/playground', { subject: suggestion.subject })}>Try it in the playground</a>.
      </p>
      {addedDomains.length === 0 && addedRules.length === 0 ? (
        <p>No change: nothing blocked that a policy change should allow.</p>
      ) : (
        <pre class="diff" aria-label="Policy diff">
          {addedDomains.map((d) => (
            <span key={`d ${d}`} class="add">{`+ allowedDomains: "${d}"\n`}</span>
          ))}
          {addedRules.map((r) => (
            <span key={`r ${r.host} ${r.method} ${r.path}`}>
              <span class="add">{`+ apiPathRules["${r.host}"]: { "method": "${r.method}", "path": "${r.path}", "allow": true }\n`}</span>
              <span class="covers">{`    allows ${r.covers.join(', ')}\n`}</span>
            </span>
          ))}
        </pre>
      )}
      {suggestion.leftBlocked.length > 0 && (
        <>
          <h3>Left blocked on purpose</h3>
          <ul>
            {suggestion.leftBlocked.map((b) => (
              <li key={b.request}>
                <code>{b.request}</code>: {b.reason}
              </li>
            ))}
          </ul>
        </>
      )}
      {suggestion.lint.ok ? (
        suggestion.lint.warnings.map((w) => (
          <p key={w} class="warning">
            {w}
          </p>
        ))
      ) : (
        <ul class="error">
          {suggestion.lint.problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      <details>
        <summary>Suggested policy</summary>
        <pre>{JSON.stringify(suggestion.policy, null, 2)}</pre>
      </details>
    </section>
  );
}
