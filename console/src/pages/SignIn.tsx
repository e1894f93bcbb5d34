import { useState } from 'preact/hooks';
import { ApiFailure, signIn } from '../api.ts';

export function SignIn({ notice, onSignedIn }: { notice: string; onSignedIn: () => void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState(notice);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      await signIn(value.trim());
      setValue('');
      onSignedIn();
    } catch (failure) {
      setError(failure instanceof ApiFailure && failure.status === 401 ? 'That token was refused.' : `Could not sign in: ${(failure as Error).message}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form onSubmit={(e) => void submit(e)} aria-labelledby="signin-title">
        <h1 id="signin-title">Sandbox console</h1>
        <p>Sign in with the service's administrator token (ADMIN_TOKEN). It stays in this tab's memory only.</p>
        <label for="token">Administrator token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          required
          autofocus
          value={value}
          onInput={(e) => setValue(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy || value.trim() === ''}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        {error !== '' && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
