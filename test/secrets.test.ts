/** Credentials that never enter the sandbox, with the proxy in the API's process. */
import { describe } from 'vitest';
import { describeCredentialSuite } from './support/credential-suite.ts';
import { dockerAvailable } from './support/docker.ts';

const hasDocker = await dockerAvailable();

describe.skipIf(!hasDocker)('secrets', () => {
  describeCredentialSuite('in-process');
});
