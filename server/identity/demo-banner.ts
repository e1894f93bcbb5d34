/**
 * What development mode prints at start: a token signed by the development
 * key and a curl that runs code with it, both usable exactly as printed. It
 * goes to the terminal, never into the JSON log, which must not hold tokens.
 */
export interface DemoBannerOptions {
  serviceUrl: string;
  token: string;
  subject: string;
  keyPath: string;
}

export function demoBanner({ serviceUrl, token, subject, keyPath }: DemoBannerOptions): string {
  const body = JSON.stringify({ code: 'console.log("Hello from the sandbox")' });
  return [
    '',
    'Development mode: no JWT_JWKS_URL, JWT_PUBLIC_KEY or JWT_SECRET is set, so tokens are verified',
    `with the development key ${keyPath} (JWKS at ${serviceUrl}/.well-known/jwks.json).`,
    '',
    `Demo token for "${subject}" (valid 24 h):`,
    '',
    `  ${token}`,
    '',
    'Run code with it:',
    '',
    `  curl -sS -X POST '${serviceUrl}/execute' -H 'Content-Type: application/json' -H 'Authorization: Bearer ${token}' -d '${body}'`,
    '',
    '',
  ].join('\n');
}
