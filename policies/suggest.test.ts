import { describe, expect, it } from 'vitest';
import { compilePolicy, decide, generalisePath, lintPolicy, suggestPolicy } from './index.ts';
import type { ObservedRequest, PolicyApi } from './index.ts';

const seen = (method: string, host: string, path: string, blocked = true): ObservedRequest => ({ method, host, port: 443, path, blocked });

function explain(policy: PolicyApi, method: string, host: string, path: string): boolean {
  const linted = lintPolicy(policy);
  if (!linted.ok) throw new Error(linted.problems.join('; '));
  return decide(compilePolicy(linted.policy), { method, host, port: 443, scheme: 'https', path, headers: {} }).allowed;
}

describe('generalisePath', () => {
  it.each([
    ['/v1/products/prod_1', '/v1/products/*'],
    ['/users/123/repos', '/users/*/repos'],
    ['/objects/3f2a9c1e4b5d6e7f8a9b0c1d', '/objects/*'],
    ['/items/123e4567-e89b-12d3-a456-426614174000', '/items/*'],
    ['/v1/charges', '/v1/charges'],
    ['/api/v2/status', '/api/v2/status'],
  ])('%s → %s', (path, pattern) => {
    expect(generalisePath(path)).toBe(pattern);
  });
});

describe('suggestPolicy', () => {
  const empty: PolicyApi = { allowedDomains: [] };

  it('allows what a learn-mode run saw on Stripe, no wider, and passes lint', () => {
    const observed = [seen('GET', 'api.stripe.com', '/v1/products/prod_1'), seen('GET', 'api.stripe.com', '/v1/products/prod_2'), seen('POST', 'api.stripe.com', '/v1/charges')];
    const suggestion = suggestPolicy({ ...empty, enforcement: 'audit' }, observed);
    expect(suggestion.lint.ok).toBe(true);
    expect(suggestion.diff.addedDomains).toEqual(['api.stripe.com']);
    expect(suggestion.diff.addedRules).toEqual([
      { host: 'api.stripe.com', method: 'GET', path: '/v1/products/*', covers: ['GET /v1/products/prod_1', 'GET /v1/products/prod_2'] },
      { host: 'api.stripe.com', method: 'POST', path: '/v1/charges', covers: ['POST /v1/charges'] },
    ]);
    expect(suggestion.policy).not.toHaveProperty('enforcement');
    const p = suggestion.policy;
    expect(explain(p, 'GET', 'api.stripe.com', '/v1/products/prod_9')).toBe(true);
    expect(explain(p, 'POST', 'api.stripe.com', '/v1/charges')).toBe(true);
    expect(explain(p, 'DELETE', 'api.stripe.com', '/v1/products/prod_1')).toBe(false);
    expect(explain(p, 'GET', 'api.stripe.com', '/v1/customers')).toBe(false);
  });

  it('collapses a folder seen with many children into a subtree, and not one seen with few', () => {
    const many = ['a', 'b', 'c', 'd'].map((name) => seen('GET', 'docs.example.com', `/guides/${name}`));
    const few = ['x', 'y'].map((name) => seen('GET', 'docs.example.com', `/blog/${name}`));
    const rules = suggestPolicy(empty, [...many, ...few]).diff.addedRules.map((r) => `${r.method} ${r.path}`);
    expect(rules).toEqual(['GET /blog/x', 'GET /blog/y', 'GET /guides/*']);
  });

  it('adds nothing for what the current policy allows, and with blockedOnly ignores what went through', () => {
    const current: PolicyApi = { allowedDomains: ['api.stripe.com'] };
    expect(suggestPolicy(current, [seen('GET', 'api.stripe.com', '/v1/x', false)]).diff).toEqual({ addedDomains: [], addedRules: [] });
    expect(suggestPolicy(empty, [seen('GET', 'api.github.com', '/', false)], { blockedOnly: true }).diff.addedDomains).toEqual([]);
  });

  it('never overrides an explicit refusal: blockedDomains and deny rules are left blocked', () => {
    const current: PolicyApi = {
      allowedDomains: ['api.stripe.com'],
      blockedDomains: ['evil.example'],
      apiPathRules: { 'api.stripe.com': [{ path: '/v1/*', allow: true, method: 'GET' }, { path: '/v1/admin/*', allow: false }] },
    };
    const suggestion = suggestPolicy(current, [seen('GET', 'evil.example', '/'), seen('GET', 'api.stripe.com', '/v1/admin/keys'), seen('POST', 'api.stripe.com', '/v1/charges')]);
    expect(suggestion.leftBlocked.map((b) => b.request)).toEqual(['GET evil.example/', 'GET api.stripe.com/v1/admin/keys']);
    expect(suggestion.diff).toEqual({ addedDomains: [], addedRules: [{ host: 'api.stripe.com', method: 'POST', path: '/v1/charges', covers: ['POST /v1/charges'] }] });
    expect(explain(suggestion.policy, 'POST', 'api.stripe.com', '/v1/charges')).toBe(true);
  });
});
