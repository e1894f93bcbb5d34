import { describe, expect, it } from 'vitest';
import { lintPolicy, resolveRequestSecrets, variableNameFromHeader } from './index.ts';
import type { RequestSecretsInput, SecretProblemCode } from './index.ts';

const KEY = 'sk_test_51HxYzAbCdEfGh';

const linted = lintPolicy({
  allowedDomains: ['api.stripe.com', '*.github.com', 'api.openai.com'],
  blockedDomains: ['evil.github.com'],
  secrets: {
    STRIPE_KEY: { hosts: ['api.stripe.com'] },
    GH_TOKEN: { hosts: ['*.github.com'], in: ['header', 'query'], value: 'ghp_policyHeldValue123' },
  },
});
if (!linted.ok) throw new Error(linted.problems.join('\n'));
const policy = linted.policy;

const input = (overrides: Partial<RequestSecretsInput>): RequestSecretsInput => ({
  policySource: 'jwt',
  policy,
  body: undefined,
  headers: {},
  env: {},
  ...overrides,
});

describe('variableNameFromHeader', () => {
  it.each([
    ['x-secret-stripe-key', 'STRIPE_KEY'],
    ['x-secret-STRIPE_KEY', 'STRIPE_KEY'],
    ['x-env-api-key', 'API_KEY'],
  ])('%s → %s', (header, name) => {
    expect(variableNameFromHeader(header, header.startsWith('x-env-') ? 'x-env-' : 'x-secret-')).toBe(name);
  });
});

describe('resolveRequestSecrets', () => {
  it('binds a declared secret from the body and the policy-held ones, with placeholders for env', () => {
    const result = resolveRequestSecrets(input({ body: { STRIPE_KEY: KEY } }));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const byName = Object.fromEntries(result.binding.secrets.map((s) => [s.name, s]));
    expect(byName.STRIPE_KEY).toMatchObject({ value: KEY, hosts: ['api.stripe.com'], source: 'request' });
    expect([...(byName.STRIPE_KEY?.places ?? [])]).toEqual(['header']);
    expect(byName.GH_TOKEN).toMatchObject({ value: 'ghp_policyHeldValue123', source: 'policy' });
    expect(Object.keys(result.binding.placeholderEnv()).sort()).toEqual(['GH_TOKEN', 'STRIPE_KEY']);
    expect(Object.values(result.binding.placeholderEnv()).join()).not.toContain(KEY);
  });

  it('reads X-Secret-* headers with the X-Env-* name mapping, and the body wins', () => {
    const fromHeader = resolveRequestSecrets(input({ headers: { 'x-secret-stripe-key': [KEY] } }));
    expect(fromHeader.ok && fromHeader.binding.secrets.find((s) => s.name === 'STRIPE_KEY')?.value).toBe(KEY);
    const both = resolveRequestSecrets(input({ headers: { 'x-secret-stripe-key': ['sk_header_value_1'] }, body: { STRIPE_KEY: KEY } }));
    expect(both.ok && both.binding.secrets.find((s) => s.name === 'STRIPE_KEY')?.value).toBe(KEY);
    const utf8 = resolveRequestSecrets(input({ headers: { 'x-secret-stripe-key': [Buffer.from('pässwört-1', 'utf8').toString('latin1')] } }));
    expect(utf8.ok && utf8.binding.secrets.find((s) => s.name === 'STRIPE_KEY')?.value).toBe('pässwört-1');
  });

  it('binds an undeclared secret in the object form to hosts the policy allows', () => {
    const result = resolveRequestSecrets(input({ body: { OPENAI_KEY: { value: 'sk-openai-123456', hosts: ['api.openai.com'], in: ['header', 'body'] } } }));
    expect(result.ok).toBe(true);
    const openai = result.ok ? result.binding.secrets.find((s) => s.name === 'OPENAI_KEY') : undefined;
    expect(openai?.allowsHost('api.openai.com', 443)).toBe(true);
    expect([...(openai?.places ?? [])]).toEqual(['header', 'body']);
  });

  it('binds nothing when nothing is supplied and the policy holds no value', () => {
    const bare = lintPolicy({ allowedDomains: ['api.stripe.com'], secrets: { STRIPE_KEY: { hosts: ['api.stripe.com'] } } });
    if (!bare.ok) throw new Error('fixture');
    const result = resolveRequestSecrets(input({ policy: bare.policy }));
    expect(result.ok && result.binding.size).toBe(0);
  });

  const many = Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`K${i}`, { value: `value-number-${i}`, hosts: ['api.stripe.com'] }]));

  it.each<[string, Partial<RequestSecretsInput>, SecretProblemCode, string]>([
    ['an undeclared name as a string', { body: { OTHER_KEY: KEY } }, 'SECRET_NOT_DECLARED', 'secrets.OTHER_KEY'],
    ['an undeclared header', { headers: { 'x-secret-other-key': [KEY] } }, 'SECRET_NOT_DECLARED', 'header x-secret-other-key'],
    ['a host the policy does not allow', { body: { X: { value: KEY, hosts: ['api.evil.com'] } } }, 'SECRET_HOST_NOT_ALLOWED', 'secrets.X.hosts'],
    ['one host of several not allowed', { body: { X: { value: KEY, hosts: ['api.openai.com', 'api.evil.com'] } } }, 'SECRET_HOST_NOT_ALLOWED', 'secrets.X.hosts'],
    ['a blocked host', { body: { X: { value: KEY, hosts: ['evil.github.com'] } } }, 'SECRET_HOST_NOT_ALLOWED', 'secrets.X.hosts'],
    ['a wider pattern than allowed', { body: { X: { value: KEY, hosts: ['*'] } } }, 'SECRET_HOST_NOT_ALLOWED', 'secrets.X.hosts'],
    ['a malformed host', { body: { X: { value: KEY, hosts: ['api.*.com'] } } }, 'SECRET_INVALID', 'secrets.X.hosts'],
    ['secrets under the default policy', { policySource: 'default', body: { STRIPE_KEY: KEY } }, 'SECRET_WITHOUT_POLICY', 'secrets'],
    ['a header under the default policy', { policySource: 'default', headers: { 'x-secret-stripe-key': [KEY] } }, 'SECRET_WITHOUT_POLICY', 'header x-secret-stripe-key'],
    ['more than 32 secrets with the policy-held one', { body: many }, 'SECRET_LIMIT', 'secrets'],
    ['a value over 8 KiB', { body: { STRIPE_KEY: 'k'.repeat(8 * 1024 + 1) } }, 'SECRET_TOO_LARGE', 'secrets.STRIPE_KEY'],
    ['a header value over 8 KiB', { headers: { 'x-secret-stripe-key': ['k'.repeat(8 * 1024 + 1)] } }, 'SECRET_TOO_LARGE', 'header x-secret-stripe-key'],
    ['a value with a line break', { body: { STRIPE_KEY: `${KEY}\r\nX-Evil: 1` } }, 'SECRET_INVALID', 'secrets.STRIPE_KEY'],
    ['an empty value', { body: { STRIPE_KEY: '' } }, 'SECRET_INVALID', 'secrets.STRIPE_KEY'],
    ['a name also in env', { body: { STRIPE_KEY: KEY }, env: { STRIPE_KEY: 'plain' } }, 'SECRET_ALSO_IN_ENV', 'env.STRIPE_KEY'],
    ['a policy-held name also in env', { env: { GH_TOKEN: 'plain' } }, 'SECRET_ALSO_IN_ENV', 'env.GH_TOKEN'],
    ['a lower-case name', { body: { stripe_key: KEY } }, 'SECRET_INVALID', 'secrets.stripe_key'],
    ['a non-object secrets field', { body: ['STRIPE_KEY'] }, 'SECRET_INVALID', 'secrets'],
    ['a number as value', { body: { STRIPE_KEY: 42 } }, 'SECRET_INVALID', 'secrets.STRIPE_KEY'],
    ['an unknown place', { body: { X: { value: KEY, hosts: ['api.openai.com'], in: ['path'] } } }, 'SECRET_INVALID', 'secrets.X.in.0'],
    ['the object form for a declared name', { body: { STRIPE_KEY: { value: KEY, hosts: ['api.stripe.com'] } } }, 'SECRET_INVALID', 'secrets.STRIPE_KEY'],
    ['a header sent twice', { headers: { 'x-secret-stripe-key': [KEY, KEY] } }, 'SECRET_INVALID', 'header x-secret-stripe-key'],
  ])('refuses %s', (_case, overrides, code, field) => {
    const result = resolveRequestSecrets(input(overrides));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems).toContainEqual(expect.objectContaining({ code, field }));
    for (const problem of result.problems) expect(problem.message).not.toContain(KEY);
  });
});
