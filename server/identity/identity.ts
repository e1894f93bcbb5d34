/** What the rest of the server knows of identity: the verifier and the two ways a request is authenticated. */
import type { DevelopmentKeys } from './dev-keys.ts';
import type { TokenVerifier, VerifiedToken } from './verifier.ts';

export interface Identity {
  verifier: TokenVerifier;
  /** Set only when no key is configured outside production. */
  development?: DevelopmentKeys;
  /** Expected `iss`/`aud`, so a demo token can be minted that passes them. */
  issuer?: string;
  audience?: string[];
  /** The verified token of a request; null when it sent no credentials. */
  authenticate: (authorization: string | undefined) => Promise<VerifiedToken | null>;
  /** Like `authenticate`, but a request without credentials is refused too. */
  requireToken: (authorization: string | undefined) => Promise<VerifiedToken>;
}
