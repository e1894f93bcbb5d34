import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, compilePolicy, decide, lintPolicy, policyFromApi } from './index.ts';

const brokenDir = new URL('../test/fixtures/policies/broken/', import.meta.url);
const readJson = (url: URL): unknown => JSON.parse(readFileSync(url, 'utf8'));

// Every problem each broken fixture must report, by field path and pattern.
const expectedProblems: Record<string, string[]> = {
  'glob-mid-label.json': ['allowedDomains[0]: "api.*.com" has a wildcard that is not a whole leading label'],
  'glob-in-label.json': ['allowedDomains[0]: "a*b.com" has a wildcard'],
  'empty-pattern.json': ['allowedDomains[0]: empty host pattern'],
  'method-not-string.json': ['apiPathRules["*.okta.com"][0].method: Invalid input: expected string, received number'],
  'unknown-rule-field.json': ['apiPathRules["*.okta.com"][0]: Unrecognized key: "methods"'],
  'bad-ports.json': [
    'allowedDomains[0]: "api.example.com:0" has a bad port "0"',
    'allowedDomains[1]: "api.example.com:65536" has a bad port "65536"',
    'allowedDomains[2]: "api.example.com:https" has a bad port "https"',
  ],
  'bad-rule-key-and-path.json': [
    'apiPathRules["api.*.com"]: "api.*.com" has a wildcard',
    'apiPathRules["api.*.com"][0].path: empty path pattern',
  ],
  'unknown-top-level-field.json': ['(policy): Unrecognized key: "blokedDomains"'],
  'bad-hosts.json': [
    'allowedDomains[0]: "user@x.com" is not a valid host name',
    'allowedDomains[1]: "x.com/path" is not a valid host name',
    'allowedDomains[2]: "*.1.2.3" puts a wildcard on an IP address',
  ],
};

describe('lintPolicy on broken fixtures', () => {
  const files = readdirSync(brokenDir).filter((name) => name.endsWith('.json'));

  it('has an expectation for every broken fixture', () => {
    expect(files.sort()).toEqual(Object.keys(expectedProblems).sort());
  });

  it.each(files)('%s is refused with every problem named', (file) => {
    const result = lintPolicy(readJson(new URL(file, brokenDir)));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const expected = expectedProblems[file] ?? [];
    expect(result.problems).toHaveLength(expected.length);
    for (const fragment of expected) expect(result.problems.some((problem) => problem.includes(fragment)), fragment).toBe(true);
  });
});

describe('lintPolicy on good policies', () => {
  it.each(['seed.json', 'deny-all.json', 'github-readonly.json'])('examples/policies/%s is valid', (file) => {
    const result = lintPolicy(readJson(new URL(`../examples/policies/${file}`, import.meta.url)));
    expect(result).toMatchObject({ ok: true });
  });

  it('maps the seed format to the internal shape exactly as the seed describes', () => {
    const result = lintPolicy(readJson(new URL('../examples/policies/seed.json', import.meta.url)));
    expect(result.ok && result.policy).toEqual({
      allowedDomains: ['api.stripe.com', '*.okta.com'],
      blockedDomains: [],
      apiPathRules: {
        '*.okta.com': [
          { method: 'GET', path: '/*', allow: true },
          { method: 'DELETE', path: '/*', allow: false },
        ],
      },
      allowedPackages: ['@okta'],
      allowedBinaries: ['ffmpeg'],
    });
  });

  it('gives a rule without method the "*" method and upper-cases the rest', () => {
    const policy = policyFromApi({ allowedDomains: ['x.com'], apiPathRules: { 'x.com': [{ path: '/a', allow: true }, { path: '/b', allow: false, method: 'patch' }] } });
    expect(policy.apiPathRules['x.com']).toEqual([
      { method: '*', path: '/a', allow: true },
      { method: 'PATCH', path: '/b', allow: false },
    ]);
  });

  it('maps caseSensitivePaths when given, and leaves it out when not', () => {
    const result = lintPolicy({ allowedDomains: ['x.com'], caseSensitivePaths: ['X.com', '*.y.com'] });
    expect(result.ok && result.policy.caseSensitivePaths).toEqual(['X.com', '*.y.com']);
    const without = lintPolicy({ allowedDomains: ['x.com'] });
    expect(without.ok && 'caseSensitivePaths' in without.policy).toBe(false);
  });

  it('refuses a caseSensitivePaths entry that is not a host pattern, naming it', () => {
    expect(lintPolicy({ allowedDomains: ['x.com'], caseSensitivePaths: ['api.*.com'] })).toEqual({
      ok: false,
      problems: [expect.stringMatching(/^caseSensitivePaths\[0\]: "api\.\*\.com" has a wildcard/)],
    });
  });

  it('refuses non-objects and wrong types with the field named', () => {
    expect(lintPolicy(null)).toMatchObject({ ok: false, problems: [expect.stringMatching(/^\(policy\): /)] });
    const result = lintPolicy({ allowedDomains: 'api.stripe.com', allowedPackages: ['ok', 'has space'], allowedBinaries: ['/bin/sh'] });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.problems).toEqual([
        expect.stringMatching(/^allowedDomains: /),
        expect.stringMatching(/^allowedPackages\[1\]: /),
        expect.stringMatching(/^allowedBinaries\[0\]: /),
      ]);
    }
  });
});

describe('lintPolicy warnings', () => {
  const warningsFor = (allowedDomains: string[]): string[] => {
    const result = lintPolicy({ allowedDomains });
    if (!result.ok) throw new Error(result.problems.join('\n'));
    return result.warnings;
  };

  // Wildcards over names other parties can own: public suffixes, and multi-tenant services.
  it.each([
    ['*.okta.com', 'covers every customer of okta.com'],
    ['*.github.io', 'github.io is on the public-suffix list'],
    ['*.s3.amazonaws.com', 's3.amazonaws.com is on the public-suffix list'],
    ['*.s3.amazonaws.com:8443', 's3.amazonaws.com is on the public-suffix list'],
    ['*.co.uk', 'co.uk is on the public-suffix list'],
    ['*.compute.amazonaws.com', 'name.compute.amazonaws.com is on the public-suffix list'],
    ['*.GitHub.IO.', 'github.io is on the public-suffix list'],
  ])('warns on %s', (entry, fragment) => {
    const warnings = warningsFor(['api.stripe.com', entry]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^allowedDomains\[1\]: /);
    expect(warnings[0]).toContain(fragment);
  });

  it.each(['*.foo.github.io', 'foo.github.io', '*.stripe.com', '*.github.com', '*.dev-123.okta.com', 'dev-123.okta.com', '*.corp.internal', '*'])(
    'does not warn on %s',
    (entry) => {
      expect(warningsFor([entry])).toEqual([]);
    },
  );

  it('warns on the seed\'s *.okta.com without refusing the policy', () => {
    const result = lintPolicy(readJson(new URL('../examples/policies/seed.json', import.meta.url)));
    expect(result).toMatchObject({ ok: true, warnings: [expect.stringMatching(/^allowedDomains\[1\]: "\*\.okta\.com" covers every customer of okta\.com/)] });
  });

  it('has no warnings for the read-only GitHub example or deny-all', () => {
    for (const file of ['github-readonly.json', 'deny-all.json']) {
      expect(lintPolicy(readJson(new URL(`../examples/policies/${file}`, import.meta.url)))).toMatchObject({ ok: true, warnings: [] });
    }
  });
});

describe('DEFAULT_POLICY', () => {
  it('denies all network access', () => {
    const compiled = compilePolicy(DEFAULT_POLICY);
    for (const host of ['api.stripe.com', '127.0.0.1', 'registry.npmjs.org', '[::1]']) {
      expect(decide(compiled, { method: 'GET', host, port: 443, scheme: 'https', path: '/', headers: {} }).allowed).toBe(false);
    }
    expect(DEFAULT_POLICY.allowedDomains).toEqual([]);
    expect(DEFAULT_POLICY.allowedPackages).toEqual([]);
    expect(Object.isFrozen(DEFAULT_POLICY)).toBe(true);
  });
});

describe('lintPolicy webSocketDomains', () => {
  it('accepts hosts allowedDomains covers', () => {
    expect(lintPolicy({ allowedDomains: ['*.example.com', 'chat.test'], webSocketDomains: ['ws.example.com', '*.rt.example.com', 'chat.test'] }).ok).toBe(true);
  });

  it('refuses a host allowedDomains does not cover, and a malformed pattern', () => {
    expect(lintPolicy({ allowedDomains: ['api.example.com'], webSocketDomains: ['ws.example.com'] })).toEqual({
      ok: false,
      problems: ['webSocketDomains[0]: "ws.example.com" is not covered by allowedDomains; add the host there too (WebSockets never widen egress)'],
    });
    expect(lintPolicy({ allowedDomains: ['*'], webSocketDomains: ['ws.*.com'] })).toMatchObject({ ok: false, problems: [expect.stringMatching(/^webSocketDomains\[0\]: /u)] });
  });
});

describe('lintPolicy package warnings', () => {
  const warningsFor = (allowedPackages: string[]): string[] => {
    const result = lintPolicy({ allowedDomains: [], allowedPackages });
    if (!result.ok) throw new Error(result.problems.join('\n'));
    return result.warnings;
  };

  it.each<[string, string | null]>([
    ['requests', 'allowedPackages[0]: "requests" allows the package of that name on npm and the project of that name on PyPI'],
    ['Flask_SQLAlchemy', 'write "npm:Flask_SQLAlchemy" or "pypi:Flask_SQLAlchemy"'],
    ['npm:lodash', null],
    ['pypi:requests', null],
    ['@okta', null],
    ['npm:@okta', null],
    ['@okta/okta-sdk-nodejs', null],
    ['file~name', null],
    ['pypi:@okta', 'allowedPackages[0]: "pypi:@okta": scopes exist only on npm; it allows nothing'],
  ])('%s', (entry, warning) => {
    const warnings = warningsFor([entry]);
    if (warning === null) expect(warnings).toEqual([]);
    else expect(warnings).toEqual([expect.stringContaining(warning)]);
  });

  it('refuses a prefix that is not an ecosystem', () => {
    expect(lintPolicy({ allowedDomains: [], allowedPackages: ['cargo:serde'] })).toMatchObject({ ok: false, problems: [expect.stringMatching(/^allowedPackages\[0\]: /)] });
  });
});
