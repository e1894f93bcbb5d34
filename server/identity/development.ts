/** What development mode tells the person who started the service. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { demoBanner } from './demo-banner.ts';
import { mintDemoToken } from './dev-keys.ts';
import type { Identity } from './identity.ts';

export const DEMO_SUBJECT = 'demo-user';
/** Beside the development key, so scripts and the README can use `$(cat .data/demo-token)`. */
export const DEMO_TOKEN_FILE = 'demo-token';

/**
 * The banner with a fresh demo token, or null outside development mode. The
 * token is also written to DATA_DIR/demo-token (0600) for scripts.
 */
export async function developmentAnnouncement(identity: Identity, serviceUrl: string, dataDir: string): Promise<string | null> {
  const keys = identity.development;
  if (keys === undefined) return null;
  const token = await mintDemoToken(keys, {
    subject: DEMO_SUBJECT,
    ...(identity.issuer !== undefined ? { issuer: identity.issuer } : {}),
    ...(identity.audience !== undefined ? { audience: identity.audience } : {}),
  });
  await writeFile(join(dataDir, DEMO_TOKEN_FILE), `${token}\n`, { mode: 0o600 });
  return demoBanner({ serviceUrl, token, subject: DEMO_SUBJECT, keyPath: keys.path });
}
