import { useEffect, useState } from 'preact/hooks';
import { api, type Explanation } from '../api.ts';
import { DecisionBadge, ErrorNote, PageTitle } from '../components.tsx';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
const LINT_DELAY_MS = 300;

const EXAMPLE = JSON.stringify({ allowedDomains: ['api.stripe.com'], apiPathRules: {} }, null, 2);

type Parsed = { ok: true; value: unknown } | { ok: false; message: string };
function parseJson(text: string): Parsed {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    return { ok: false, message: (error as Error).message };
  }
}

export function Playground({ params }: { params: URLSearchParams }) {
  const [subject, setSubject] = useState(params.get('subject') ?? '');
  const [text, setText] = useState(EXAMPLE);
  const [lint, setLint] = useState<Explanation['lint'] | null>(null);
  const [jsonError, setJsonError] = useState('');
  const [method, setMethod] = useState('GET');
  const [url, setUrl] = useState('');
  const [result, setResult] = useState<Explanation | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = async (name: string) => {
    setError(null);
    try {
      const found = await api.policy(name);
      setText(JSON.stringify(found.policy, null, 2));
      setResult(null);
    } catch (failure) {
      setError(failure);
    }
  };

  useEffect(() => {
    const initial = params.get('subject');
    if (initial !== null && initial !== '') void load(initial);
  }, []);

  // Lint as the administrator types, a moment after the last key.
  useEffect(() => {
    const timer = setTimeout(() => {
      const parsed = parseJson(text);
      if (!parsed.ok) {
        setJsonError(parsed.message);
        setLint(null);
        return;
      }
      setJsonError('');
      api.explain({ policy: parsed.value }).then((answer) => setLint(answer.lint), setError);
    }, LINT_DELAY_MS);
    return () => clearTimeout(timer);
  }, [text]);

  const explain = async (event: Event) => {
    event.preventDefault();
    setError(null);
    setResult(null);
    const parsed = parseJson(text);
    if (!parsed.ok) {
      setJsonError(parsed.message);
      return;
    }
    try {
      const answer = await api.explain({ policy: parsed.value, method, url: url.trim() });
      setLint(answer.lint);
      setResult(answer);
    } catch (failure) {
      setError(failure);
    }
  };

  return (
    <>
      <PageTitle>Policy playground</PageTitle>
      <p class="muted">The same lint and matcher as <code>sandbox-policy explain</code> and the egress proxy.</p>
      <form
        class="filters"
        aria-label="Load a subject's policy"
        onSubmit={(e) => {
          e.preventDefault();
          if (subject.trim() !== '') void load(subject.trim());
        }}
      >
        <label>
          Subject
          <input name="subject" value={subject} onInput={(e) => setSubject(e.currentTarget.value)} />
        </label>
        <button type="submit">Load policy</button>
      </form>
      <div class="playground">
        <div>
          <label for="policy-text">Policy (JSON, policy API format)</label>
          <textarea id="policy-text" spellcheck={false} rows={18} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          <div class="lint" aria-live="polite" data-testid="lint">
            {jsonError !== '' ? (
              <p class="error">Not JSON: {jsonError}</p>
            ) : lint === null ? (
              <p class="muted">Checking…</p>
            ) : lint.ok ? (
              <>
                <p class="ok">Lint: valid policy</p>
                {lint.warnings.map((w) => (
                  <p key={w} class="warning">
                    warning: {w}
                  </p>
                ))}
              </>
            ) : (
              <ul class="error">
                {lint.problems.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            )}
          </div>
        </div>
        <div>
          <form class="request" aria-label="Request to decide" onSubmit={(e) => void explain(e)}>
            <label>
              Method
              <select name="method" value={method} onChange={(e) => setMethod(e.currentTarget.value)}>
                {METHODS.map((m) => (
                  <option key={m}>{m}</option>
                ))}
              </select>
            </label>
            <label class="grow">
              URL
              <input name="url" type="text" inputMode="url" placeholder="https://api.example.com/v1/things" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
            </label>
            <button type="submit">Explain</button>
          </form>
          <ErrorNote error={error} />
          {result?.decision != null && (
            <dl class="fields decision" data-testid="decision" aria-live="polite">
              <div>
                <dt>Decision</dt>
                <dd>
                  <DecisionBadge state={result.decision.allowed ? 'allowed' : 'blocked'} />
                </dd>
              </div>
              <div>
                <dt>Reason</dt>
                <dd data-testid="reason">{result.decision.reason}</dd>
              </div>
              <div>
                <dt>Rule</dt>
                <dd>
                  <code data-testid="rule">{result.decision.rule}</code>
                </dd>
              </div>
              <div>
                <dt>Host</dt>
                <dd>{result.decision.host ?? '(invalid)'}</dd>
              </div>
              {result.decision.path !== undefined && (
                <div>
                  <dt>Path checked</dt>
                  <dd>{result.decision.path}</dd>
                </div>
              )}
            </dl>
          )}
          {result !== null && result.decision === null && <p class="error">Fix the policy's problems first.</p>}
        </div>
      </div>
    </>
  );
}
