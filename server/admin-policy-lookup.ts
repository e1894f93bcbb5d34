/**
 * The subject's policy as the administrator endpoints read it (the
 * playground's look-up, the suggestion's starting point): the redacted view
 * GET /api/user/policies gives, so a secret value the policy file holds
 * stays with the proxy, and an administrator learns only that there is one.
 */
import { DirectoryPolicySource, redactSecretValues } from '../policies/index.ts';
import type { Config } from './config.ts';

export type AdminPolicyLookup = (subject: string) => Promise<unknown>;

/** Null when this server does not read the policy folder itself (a remote policy API answers only with the user's token) or has no policy for the subject. */
export function adminPolicyLookup(config: Pick<Config, 'POLICY_API_URL' | 'POLICY_DIR'>): AdminPolicyLookup {
  if (config.POLICY_API_URL !== undefined) return () => Promise.resolve(null);
  const folder = new DirectoryPolicySource({ directory: config.POLICY_DIR });
  return (subject) =>
    folder
      .load({ token: '', subject })
      .then((document) => redactSecretValues(document as { secrets?: Record<string, { value?: string }> }))
      .catch(() => null);
}
