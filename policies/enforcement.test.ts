import { describe, expect, it } from 'vitest';
import { compilePolicy, DEFAULT_POLICY, lintPolicy, decideWithPackages, PackageClosure, packageRules } from './index.ts';
import type { EgressRequest, Policy } from './index.ts';

function linted(document: unknown): Policy {
  const result = lintPolicy(document);
  if (!result.ok) throw new Error(result.problems.join('; '));
  return result.policy;
}

const rules = {
  allowedDomains: ['api.stripe.com'],
  blockedDomains: ['evil.example'],
  apiPathRules: { 'api.stripe.com': [{ path: '/v1/products/*', allow: true, method: 'GET' }, { path: '/v1/admin/*', allow: false }] },
};
const audit = compilePolicy(linted({ ...rules, enforcement: 'audit' }));
const enforce = compilePolicy(linted(rules));
const decideIn = (policy: ReturnType<typeof compilePolicy>, method: string, host: string, path: string, port = 443) => {
  const request: EgressRequest = { method, host, port, scheme: 'https', path, headers: {} };
  return decideWithPackages(policy, new PackageClosure(packageRules([])), request);
};

describe('audit (learn) mode', () => {
  it.each([
    ['a host outside allowedDomains', 'GET', 'api.github.com', '/users', 'Domain api.github.com is not in allowed list'],
    ['a blocked domain', 'GET', 'evil.example', '/', 'Domain evil.example is blocked by policy'],
    ['a method no rule allows', 'POST', 'api.stripe.com', '/v1/products/1', 'No rule allows POST /v1/products/1 for api.stripe.com'],
    ['a deny rule', 'GET', 'api.stripe.com', '/v1/admin/keys', 'Method GET not allowed for api.stripe.com'],
  ])('lets through %s, marked wouldBlock with the enforcing reason', (_name, method, host, path, reason) => {
    expect(decideIn(enforce, method, host, path)).toMatchObject({ allowed: false, reason });
    const relaxed = decideIn(audit, method, host, path);
    expect(relaxed).toMatchObject({ allowed: true, wouldBlock: true, reason });
  });

  it.each([
    ['an ambiguous path', 'GET', 'api.stripe.com', '/v1/products/a%2Fb', 443],
    ['a port the entry does not allow', 'GET', 'api.stripe.com', '/v1/products/1', 8443],
    ['an unreadable host', 'GET', 'bad host', '/', 443],
  ])('still blocks %s', (_name, method, host, path, port) => {
    const decision = decideIn(audit, method, host, path, port);
    expect(decision.allowed).toBe(false);
    expect(decision).not.toHaveProperty('wouldBlock');
  });

  it('changes nothing for what the rules allow', () => {
    expect(decideIn(audit, 'GET', 'api.stripe.com', '/v1/products/1')).not.toHaveProperty('wouldBlock');
  });

  it('cannot apply to the default policy, and only the policy document can ask for it', () => {
    expect(DEFAULT_POLICY).not.toHaveProperty('enforcement');
    const none = compilePolicy(DEFAULT_POLICY);
    expect(decideIn(none, 'GET', 'api.github.com', '/').allowed).toBe(false);
    expect(lintPolicy({ ...rules, enforcement: 'learn' }).ok).toBe(false);
  });
});
