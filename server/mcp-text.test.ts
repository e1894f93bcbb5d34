import { describe, expect, it } from 'vitest';
import { compilePolicy, type Policy } from '../policies/index.ts';
import type { Caller } from './identity/index.ts';
import { checkEgress, describeExecution, describePolicy, EgressUrlError, policyDescription } from './mcp-text.ts';
import type { ExecuteResponseData } from './execution-service.ts';

const SECRET_VALUE = 'sk_test_0123456789abcdef0123456789';

const callerWith = (policy: Policy): Caller => ({
  subject: 'alice',
  policyInfo: { source: 'jwt', name: 'User Policy', hash: 'h', enforcement: policy.enforcement ?? 'enforce' },
  policy: compilePolicy(policy),
});

const policy: Policy = {
  allowedDomains: ['api.stripe.com', '*.okta.com'],
  blockedDomains: [],
  apiPathRules: { '*.okta.com': [{ method: 'GET', path: '/*', allow: true }, { method: 'DELETE', path: '/*', allow: false }] },
  allowedPackages: ['@okta'],
  allowedBinaries: ['ffmpeg'],
  secrets: { STRIPE_KEY: { hosts: ['api.stripe.com'], in: ['header'], value: SECRET_VALUE } },
};

describe('checkEgress', () => {
  it('answers with the reason and the rule, and the secrets it would substitute by name', () => {
    expect(checkEgress(callerWith(policy), 'DELETE', 'https://dev-123.okta.com/api/v1/users/1')).toMatchObject({
      allowed: false,
      reason: 'Method DELETE not allowed for *.okta.com',
      rule: 'apiPathRules["*.okta.com"][1]',
      secrets: [],
    });
    expect(checkEgress(callerWith(policy), 'GET', 'https://api.stripe.com/v1/charges')).toMatchObject({ allowed: true, secrets: ['STRIPE_KEY'] });
  });

  it('lets through what audit mode would block, and says so', () => {
    const check = checkEgress(callerWith({ ...policy, enforcement: 'audit' }), 'GET', 'https://api.github.com/');
    expect(check).toMatchObject({ allowed: true, wouldBlock: true, reason: 'Domain api.github.com is not in allowed list' });
  });

  it('refuses a URL that is not http or https', () => {
    expect(() => checkEgress(callerWith(policy), 'GET', 'ftp://api.stripe.com/')).toThrow(EgressUrlError);
  });
});

describe('describePolicy', () => {
  it('names secrets and their hosts, never their values', () => {
    const description = policyDescription(callerWith(policy));
    const text = describePolicy(description);
    expect(description.secrets).toEqual([{ name: 'STRIPE_KEY', hosts: ['api.stripe.com'], in: ['header'] }]);
    expect(text).toContain('secret STRIPE_KEY: sent only to api.stripe.com');
    expect(text).toContain('deny DELETE /*');
    expect(JSON.stringify(description) + text).not.toContain(SECRET_VALUE);
  });
});

describe('describeExecution', () => {
  it('summarises the exit, both streams and each request with its reason', () => {
    const data = {
      stdout: '403\n', stderr: '', code: 0, signal: null, timedOut: false, oomKilled: false,
      truncated: { stdout: false, stderr: false },
      networkLog: [{ method: 'GET', url: 'https://api.github.com/', hostname: 'api.github.com', statusCode: 403, blocked: true, reason: 'Domain api.github.com is not in allowed list', durationMs: 1 }],
    } as unknown as ExecuteResponseData;
    expect(describeExecution(data)).toBe([
      'exit: 0', 'stdout:', '403', 'stderr:', '(empty)', 'network: 0 allowed, 1 blocked',
      '  blocked GET https://api.github.com/ -> 403: Domain api.github.com is not in allowed list',
    ].join('\n'));
  });
});
