/**
 * The administrator's console: hash routes (the page a link names never
 * reaches the server, so nothing but the asset files is served), the token
 * in memory, and one page per question an administrator asks.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { isSignedIn, onSignedOut, signOut } from './api.ts';
import { routeParams } from './format.ts';
import { Blocked } from './pages/Blocked.tsx';
import { ExecutionDetail } from './pages/ExecutionDetail.tsx';
import { Executions } from './pages/Executions.tsx';
import { Overview } from './pages/Overview.tsx';
import { Playground } from './pages/Playground.tsx';
import { SignIn } from './pages/SignIn.tsx';

const NAV = [
  { path: '/', label: 'Overview' },
  { path: '/executions', label: 'Executions' },
  { path: '/blocked', label: 'Blocked requests' },
  { path: '/playground', label: 'Policy playground' },
] as const;

function useHash(): string {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const update = () => setHash(window.location.hash);
    window.addEventListener('hashchange', update);
    return () => window.removeEventListener('hashchange', update);
  }, []);
  return hash;
}

function Page({ hash }: { hash: string }) {
  const { path, params } = routeParams(hash);
  const detail = /^\/executions\/(.+)$/.exec(path);
  if (detail?.[1] !== undefined) return <ExecutionDetail key={detail[1]} id={decodeURIComponent(detail[1])} />;
  switch (path) {
    case '/':
      return <Overview />;
    case '/executions':
      return <Executions key={hash} params={params} />;
    case '/blocked':
      return <Blocked key={hash} params={params} />;
    case '/playground':
      return <Playground key={hash} params={params} />;
    default:
      return (
        <p>
          No such page. <a href="#/">Overview</a>
        </p>
      );
  }
}

function App() {
  const [signedIn, setSignedIn] = useState(isSignedIn());
  const [notice, setNotice] = useState('');
  const hash = useHash();
  useEffect(
    () =>
      onSignedOut((reason) => {
        setNotice(reason);
        setSignedIn(false);
      }),
    [],
  );

  if (!signedIn) return <SignIn notice={notice} onSignedIn={() => setSignedIn(true)} />;
  const { path } = routeParams(hash);
  const current = NAV.findLast((n) => n.path === '/' ? path === '/' : path.startsWith(n.path));
  return (
    <>
      <header class="top">
        <span class="brand">Sandbox console</span>
        <nav aria-label="Pages">
          {NAV.map((n) => (
            <a key={n.path} href={`#${n.path}`} aria-current={current === n ? 'page' : undefined}>
              {n.label}
            </a>
          ))}
        </nav>
        <button type="button" class="signout" onClick={() => signOut('Signed out.')}>
          Sign out
        </button>
      </header>
      <main id="main">
        <Page hash={hash} />
      </main>
    </>
  );
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
