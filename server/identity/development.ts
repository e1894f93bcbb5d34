/** What development mode tells the person who started the service. */
import { demoBanner } from './demo-banner.ts';
import { mintDemoToken } from './dev-keys.ts';
import type { Identity } from './index.ts';

export const DEMO_SUBJECT = 'demo-user';

/** The banner with a fresh demo token, or null outside development mode. */
export async function developmentAnnouncement(identity: Identity, serviceUrl: string): Promise<string | null> {
  const keys = identity.development;
  if (keys === undefined) return null;
  const token = await mintDemoToken(keys, {
    subject: DEMO_SUBJECT,
    ...(identity.issuer !== undefined ? { issuer: identity.issuer } : {}),
    ...(identity.audience !== undefined ? { audience: identity.audience } : {}),
  });
  return demoBanner({ serviceUrl, token, subject: DEMO_SUBJECT, keyPath: keys.path });
}
