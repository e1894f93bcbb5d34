/**
 * Credentials that never enter the sandbox, with the proxy as its own
 * service: the binding travels over the authenticated control channel only.
 */
import { describe } from 'vitest';
import { describeCredentialSuite } from './support/credential-suite.ts';
import { dockerAvailable } from './support/docker.ts';

const hasDocker = await dockerAvailable();

describe.skipIf(!hasDocker)('secrets in remote mode', () => {
  describeCredentialSuite('remote');
});
