import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { main } from './cli.ts';
import {
  PLACEHOLDER_PATTERN,
  SecretBinding,
  compileSecretRules,
  hostPatternCovers,
  lintPolicy,
  makePlaceholder,
  parseHostPattern,
  policyFromApi,
  redactSecretValues,
  secretsFor,
} from './index.ts';
import type { HostPattern, PolicyApi } from './index.ts';

const KEY = 'sk_test_51HxYzAbCdEfGh';

const stripePolicy: PolicyApi = {
  allowedDomains: ['api.stripe.com', '*.github.com', 'api.example.com:8443'],
  blockedDomains: ['evil.github.com'],
  secrets: {
    STRIPE_KEY: { hosts: ['api.stripe.com'] },
    GH_TOKEN: { hosts: ['*.github.com'], in: ['header', 'query', 'header'], value: 'ghp_policyHeldValue123' },
    EXAMPLE: { hosts: ['api.example.com:8443'], in: ['body'] },
  },
};

const pattern = (text: string): HostPattern => {
  const parsed = parseHostPattern(text);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.pattern;
};

describe('secrets in the policy format', () => {
  it('maps to the internal shape: in defaults to header, repeats dropped, values kept', () => {
    const result = lintPolicy(stripePolicy);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.policy.secrets).toEqual({
      STRIPE_KEY: { hosts: ['api.stripe.com'], in: ['header'] },
      GH_TOKEN: { hosts: ['*.github.com'], in: ['header', 'query'], value: 'ghp_policyHeldValue123' },
      EXAMPLE: { hosts: ['api.example.com:8443'], in: ['body'] },
    });
  });

  it('leaves secrets out of a policy that declares none', () => {
    expect(policyFromApi({ allowedDomains: ['x.com'] })).not.toHaveProperty('secrets');
  });

  const withSecrets = (secrets: unknown): unknown => ({ allowedDomains: ['api.stripe.com', '*.github.com'], secrets });

  it.each([
    ['a lower-case name', { stripe_key: { hosts: ['api.stripe.com'] } }, 'secrets.stripe_key: secret name must be an environment-variable name'],
    ['a name starting with a digit', { '1KEY': { hosts: ['api.stripe.com'] } }, 'secrets["1KEY"]: secret name must be'],
    ['a name over 64 characters', { ['K'.repeat(65)]: { hosts: ['api.stripe.com'] } }, 'is longer than 64 characters'],
    ['no hosts', { KEY: { hosts: [] } }, 'secrets.KEY.hosts: a secret needs at least one host'],
    ['a bad host pattern', { KEY: { hosts: ['api.*.com'] } }, 'secrets.KEY.hosts[0]: "api.*.com" has a wildcard'],
    ['an unknown place', { KEY: { hosts: ['api.stripe.com'], in: ['path'] } }, 'secrets.KEY.in[0]:'],
    ['an empty in', { KEY: { hosts: ['api.stripe.com'], in: [] } }, 'secrets.KEY.in: in must name at least one place'],
    ['an unknown field', { KEY: { hosts: ['api.stripe.com'], values: 'x' } }, 'secrets.KEY: Unrecognized key: "values"'],
    ['a short value', { KEY: { hosts: ['api.stripe.com'], value: 'abc' } }, 'secrets.KEY.value: value is 3 bytes; at least 8'],
    ['a value over 8 KiB', { KEY: { hosts: ['api.stripe.com'], value: 'x'.repeat(8193) } }, 'secrets.KEY.value: value is 8193 bytes; the limit is 8192'],
    ['a value with a line break', { KEY: { hosts: ['api.stripe.com'], value: 'abcdefgh\r\nX-Evil: 1' } }, 'secrets.KEY.value: value contains a control character'],
    ['more than 32 secrets', Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`K${i}`, { hosts: ['api.stripe.com'] }])), 'secrets: at most 32 secrets'],
  ])('refuses %s, naming the field', (_case, secrets, fragment) => {
    const result = lintPolicy(withSecrets(secrets));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.join('\n')).toContain(fragment);
  });
});

describe('lint: a secret never widens egress', () => {
  it.each([
    [['api.stripe.com'], [], ['api.stripe.com'], null],
    [['*.stripe.com'], [], ['api.stripe.com', '*.eu.stripe.com'], null],
    [['*'], [], ['anything.example', '*'], null],
    [['api.stripe.com'], [], ['api.github.com'], 'secrets.K.hosts[0]: "api.github.com" is not covered by allowedDomains'],
    [['*.stripe.com'], [], ['stripe.com'], 'is not covered by allowedDomains'],
    [['api.stripe.com'], [], ['*.stripe.com'], 'is not covered by allowedDomains'],
    [['*.stripe.com'], [], ['*'], 'is not covered by allowedDomains'],
    [['api.stripe.com'], [], ['api.stripe.com:8443'], 'is not covered by allowedDomains on port 8443'],
    [['api.stripe.com:8443'], [], ['api.stripe.com'], 'is not covered by allowedDomains; a secret never widens egress'],
    [['api.stripe.com:8443'], [], ['api.stripe.com:8443'], null],
    [['*.github.com'], ['evil.github.com'], ['evil.github.com'], '"evil.github.com" is blocked by blockedDomains ("evil.github.com")'],
    [['*.github.com'], ['*.github.com'], ['api.github.com'], 'is blocked by blockedDomains ("*.github.com")'],
    // Partly blocked is fine: the policy decision comes first and blocks those hosts.
    [['*.github.com'], ['evil.github.com'], ['*.github.com'], null],
  ])('allowed %j, blocked %j, secret hosts %j → %s', (allowedDomains, blockedDomains, hosts, problem) => {
    const result = lintPolicy({ allowedDomains, blockedDomains, secrets: { K: { hosts } } });
    if (problem === null) expect(result).toMatchObject({ ok: true });
    else expect(result.ok === false && result.problems.join('\n')).toContain(problem);
  });

  it.each([
    ['*', 'api.stripe.com', true],
    ['*', '*', true],
    ['*.a.com', 'x.a.com', true],
    ['*.a.com', '*.b.a.com', true],
    ['*.a.com', '*.a.com', true],
    ['*.a.com', 'a.com', false],
    ['*.a.com', '*', false],
    ['*.a.com', '*.xa.com', false],
    ['x.a.com', 'x.a.com', true],
    ['x.a.com', '*.x.a.com', false],
    ['*.1.com', '127.0.0.1', false],
  ])('%s covers %s: %s', (outer, inner, expected) => {
    expect(hostPatternCovers(pattern(outer), pattern(inner))).toBe(expected);
  });
});

describe('secretsFor', () => {
  const linted = lintPolicy(stripePolicy);
  if (!linted.ok) throw new Error('fixture');
  const rules = compileSecretRules(linted.policy);

  it.each([
    ['api.stripe.com', 443, [{ name: 'STRIPE_KEY', places: ['header'] }]],
    ['API.Stripe.com.', 443, [{ name: 'STRIPE_KEY', places: ['header'] }]],
    ['api.stripe.com', 8443, []],
    ['api.github.com', 443, [{ name: 'GH_TOKEN', places: ['header', 'query'] }]],
    ['github.com', 443, []],
    ['api.example.com', 8443, [{ name: 'EXAMPLE', places: ['body'] }]],
    ['api.example.com', 443, []],
    ['api.stripe.com.evil.com', 443, []],
    ['not a host', 443, []],
  ])('%s:%d → %j', (host, port, expected) => {
    expect(secretsFor(rules, { host, port })).toEqual(expected);
  });

  it('records which secrets the policy holds a value for, without the value', () => {
    expect(rules.map((rule) => [rule.name, rule.hasPolicyValue])).toEqual([['STRIPE_KEY', false], ['GH_TOKEN', true], ['EXAMPLE', false]]);
    expect(JSON.stringify(rules)).not.toContain('ghp_policyHeldValue123');
  });
});

describe('redactSecretValues', () => {
  it('removes every value from both formats and leaves the input alone', () => {
    const linted = lintPolicy(stripePolicy);
    if (!linted.ok) throw new Error('fixture');
    for (const policy of [stripePolicy, linted.api, linted.policy]) {
      const view = redactSecretValues(policy);
      expect(JSON.stringify(view)).not.toContain('ghp_policyHeldValue123');
      expect(view.secrets?.GH_TOKEN).toMatchObject({ hosts: ['*.github.com'], valueFromPolicy: true });
      expect(view.secrets?.STRIPE_KEY).not.toHaveProperty('valueFromPolicy');
      expect(view.allowedDomains).toEqual(policy.allowedDomains);
      expect(JSON.stringify(policy)).toContain('ghp_policyHeldValue123');
    }
  });

  it('reads back as a valid policy whose secret then needs its value from the request', () => {
    const view = redactSecretValues(stripePolicy);
    const linted = lintPolicy(view);
    expect(linted.ok).toBe(true);
    if (!linted.ok) return;
    expect(linted.policy.secrets?.GH_TOKEN).toEqual({ hosts: ['*.github.com'], in: ['header', 'query'] });
  });

  it('returns a policy without secrets unchanged', () => {
    const policy: PolicyApi = { allowedDomains: ['x.com'] };
    expect(redactSecretValues(policy)).toBe(policy);
  });
});

describe('sandbox-policy explain with secrets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'secrets-cli-'));
  const file = join(dir, 'policy.json');
  writeFileSync(file, JSON.stringify(stripePolicy));
  const run = (argv: string[]) => {
    const out: string[] = [];
    const code = main(argv, { out: (line) => out.push(line), err: () => undefined });
    return { code, out };
  };

  it.each([
    ['GET', 'https://api.stripe.com/v1/charges', 0, 'secrets: STRIPE_KEY (header)'],
    ['GET', 'https://api.github.com/user?x=1', 0, 'secrets: GH_TOKEN (header, query)'],
    ['POST', 'https://api.example.com:8443/', 0, 'secrets: EXAMPLE (body)'],
    ['GET', 'https://evil.github.com/', 1, 'secrets: none (the request is blocked; secrets never override the policy)'],
    ['GET', 'https://github.com/', 1, 'secrets: none (the request is blocked; secrets never override the policy)'],
  ])('%s %s shows the secrets it would carry', (method, url, code, line) => {
    const result = run(['explain', file, method, url]);
    expect(result.code).toBe(code);
    expect(result.out).toContain(line);
    expect(result.out.join('\n')).not.toContain('ghp_policyHeldValue123');
  });

  it('lint rejects a secret bound to a host the policy does not allow', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ allowedDomains: ['api.github.com'], secrets: { STRIPE_KEY: { hosts: ['api.stripe.com'] } } }));
    const result = run(['lint', bad]);
    expect(result.code).toBe(1);
    expect(result.out).toEqual(['secrets.STRIPE_KEY.hosts[0]: "api.stripe.com" is not covered by allowedDomains; a secret never widens egress']);
  });
});

describe('SecretBinding', () => {
  const binding = SecretBinding.fromSpecs([
    { name: 'STRIPE_KEY', value: KEY, hosts: ['api.stripe.com'], in: ['header'], source: 'request' },
    { name: 'GH_TOKEN', value: 'ghp_policyHeldValue123', hosts: ['*.github.com'], in: ['query'], source: 'policy' },
  ]);

  it('gives each secret a fresh sbx_secret_<NAME>_<24 base62> placeholder', () => {
    const [stripe] = binding.secrets;
    expect(stripe?.placeholder).toMatch(/^sbx_secret_STRIPE_KEY_[0-9A-Za-z]{24}$/);
    expect(stripe?.placeholder).toMatch(PLACEHOLDER_PATTERN);
    const many = new Set(Array.from({ length: 1000 }, () => makePlaceholder('K')));
    expect(many.size).toBe(1000);
    expect(binding.placeholderEnv()).toEqual({ STRIPE_KEY: stripe?.placeholder, GH_TOKEN: binding.secrets[1]?.placeholder });
  });

  it('uses every base62 character, from crypto-random bytes', () => {
    const seen = new Set([...Array.from({ length: 400 }, () => makePlaceholder('K')).join('')].slice(0));
    for (const c of '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz') expect(seen.has(c), c).toBe(true);
    // A source that always returns 255 (rejected) then 0 yields '0's: rejection sampling, no modulo bias.
    let call = 0;
    const placeholder = makePlaceholder('K', (size) => new Uint8Array(size).fill(call++ === 0 ? 255 : 0));
    expect(placeholder).toBe(`sbx_secret_K_${'0'.repeat(24)}`);
  });

  it('never serialises a value by accident', () => {
    for (const text of [JSON.stringify(binding), inspect(binding), String(binding), inspect(binding.secrets[0]), JSON.stringify({ binding })]) {
      expect(text).not.toContain(KEY);
      expect(text).not.toContain('ghp_policyHeldValue123');
    }
    expect(JSON.stringify(binding)).toContain('STRIPE_KEY');
  });

  it('crosses the control channel in its wire form and comes back the same', () => {
    const wire = JSON.parse(JSON.stringify(binding.toWire()));
    const rebuilt = SecretBinding.fromWire(wire);
    expect(rebuilt.secrets.map((s) => [s.name, s.placeholder, s.value, [...s.places]])).toEqual(
      binding.secrets.map((s) => [s.name, s.placeholder, s.value, [...s.places]]),
    );
    expect(() => SecretBinding.fromWire([{ ...wire[0], placeholder: 'nope' }])).toThrow();
  });

  it('answers host questions with canonical hosts and ports', () => {
    const [stripe, github] = binding.secrets;
    expect(stripe?.allowsHost('API.STRIPE.COM.', 443)).toBe(true);
    expect(stripe?.allowsHost('api.stripe.com', 8443)).toBe(false);
    expect(github?.allowsHost('api.github.com', 443)).toBe(true);
    expect(github?.allowsHost('github.com', 443)).toBe(false);
    expect(binding.boundTo('uploads.github.com', 443)).toBe(true);
    expect(binding.boundTo('example.com', 443)).toBe(false);
  });
});
