import { useEffect, useState } from 'preact/hooks';
import { api, type ExecutionDetail as Detail } from '../api.ts';
import { DecisionBadge, ErrorNote, OutcomeBadge, PageTitle } from '../components.tsx';
import { decisionState, decisionUrl, formatMs, formatTime, hrefWith } from '../format.ts';

export function ExecutionDetail({ id }: { id: string }) {
  const [detail, setDetail] = useState<Detail | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    api.execution(id).then(setDetail, setError);
  }, [id]);

  if (detail === null) {
    return (
      <>
        <PageTitle>Execution</PageTitle>
        <ErrorNote error={error} />
        {error === null && <p class="muted">Loading…</p>}
      </>
    );
  }
  const started = detail.startedAt === null ? null : Date.parse(detail.startedAt);
  const fields: Array<[string, preact.ComponentChildren]> = [
    ['Execution', <code>{detail.id}</code>],
    ['Subject', detail.subject === null ? '(no token: default policy)' : <a href={hrefWith('/executions', { subject: detail.subject })}>{detail.subject}</a>],
    ['Outcome', <OutcomeBadge outcome={detail.outcome} />],
    ['Exit code', detail.exitCode ?? '—'],
    ['Signal', detail.signal ?? '—'],
    ['Error code', detail.errorCode ?? '—'],
    ['Language', detail.language],
    ['Isolation tier', detail.tier ?? '—'],
    ['Started', formatTime(detail.startedAt)],
    ['Finished', formatTime(detail.finishedAt)],
    ['Duration', formatMs(detail.durationMs)],
    ['Queued', formatMs(detail.queuedMs)],
    ['Policy source', detail.policySource],
    ['Policy hash', <code class="hash">{detail.policyHash}</code>],
    ['Policy version', detail.policyVersion ?? '—'],
    ['Requests', `${detail.allowedRequests} allowed, ${detail.blockedRequests} blocked, ${detail.wouldBlockRequests} would block`],
    ['Code', <span><code class="hash">{detail.codeSha256}</code> ({detail.codeBytes} bytes)</span>],
  ];

  return (
    <>
      <PageTitle>Execution {detail.id.slice(0, 8)}</PageTitle>
      <p>
        <a href="#/executions">← all executions</a>
        {detail.subject !== null && (
          <>
            {' · '}
            <a href={hrefWith('/blocked', { subject: detail.subject })}>blocked requests of {detail.subject}</a>
            {' · '}
            <a href={hrefWith('/playground', { subject: detail.subject })}>try {detail.subject}'s policy</a>
          </>
        )}
      </p>
      <section aria-labelledby="result-title">
        <h2 id="result-title">Result</h2>
        <dl class="fields">
          {fields.map(([name, value]) => (
            <div key={name}>
              <dt>{name}</dt>
              <dd>{value}</dd>
            </div>
          ))}
        </dl>
        {detail.code !== null && (
          <details>
            <summary>Code</summary>
            <pre>{detail.code}</pre>
          </details>
        )}
      </section>
      <section aria-labelledby="log-title">
        <h2 id="log-title">Network log</h2>
        {detail.decisions.length === 0 ? (
          <p class="muted">No network requests.</p>
        ) : (
          <div class="table-wrap">
            <table class="timeline">
              <thead>
                <tr>
                  <th scope="col">At</th>
                  <th scope="col">Method</th>
                  <th scope="col">URL</th>
                  <th scope="col">Status</th>
                  <th scope="col">Decision</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Rule</th>
                  <th scope="col">Secrets</th>
                  <th scope="col">Duration</th>
                </tr>
              </thead>
              <tbody>
                {detail.decisions.map((d, i) => {
                  const state = decisionState(d);
                  const offset = started === null || d.at === null ? null : Date.parse(d.at) - started;
                  return (
                    <tr key={i} class={state === 'allowed' ? '' : 'blocked'}>
                      <td class="num">{offset === null ? '—' : `+${formatMs(Math.max(0, offset))}`}</td>
                      <td>{d.method}</td>
                      <td class="url">{decisionUrl(d)}</td>
                      <td class="num">{d.statusCode}</td>
                      <td>
                        <DecisionBadge state={state} />
                      </td>
                      <td>{d.reason ?? '—'}</td>
                      <td>{d.rule === null ? '—' : <code>{d.rule}</code>}</td>
                      <td>{d.secrets.length === 0 ? '—' : d.secrets.join(', ')}</td>
                      <td class="num">{formatMs(d.durationMs)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </>
  );
}
