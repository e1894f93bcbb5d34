import { describe, expect, it } from 'vitest';
import { canonicalHost, hostMatches, isIpLiteral, parseDomainEntry, parseHostPattern } from './index.ts';

describe('canonicalHost', () => {
  it.each([
    ['Example.COM', 'example.com'],
    ['example.com.', 'example.com'],
    ['LOCALHOST.', 'localhost'],
    ['b\u00fccher.example', 'xn--bcher-kva.example'],
    ['\uff45xample.com', 'example.com'],
    ['2130706433', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['127.0.0.1.', '127.0.0.1'],
    ['[::ffff:7f00:1]', '127.0.0.1'],
    ['[::ffff:127.0.0.1]', '127.0.0.1'],
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['[0:0:0:0:0:0:0:1]', '[::1]'],
    ['::1', '[::1]'],
    ['[2001:DB8::0:1]', '[2001:db8::1]'],
  ])('%s → %s', (raw, canonical) => {
    expect(canonicalHost(raw)).toBe(canonical);
  });

  it.each([
    '',
    'user@example.com',
    'user:pass@example.com',
    'example.com\\evil.com',
    'example.com/path',
    'example.com?x',
    'example.com#x',
    'example.com:443',
    'ex%61mple.com',
    'exa mple.com',
    'example.com..',
    'a..b.com',
    '*.example.com',
    '[::1',
    '256.256.256.256',
    'foo.0x',
    'example.com\u0000',
  ])('refuses %j', (raw) => {
    expect(canonicalHost(raw)).toBeNull();
  });
});

describe('isIpLiteral', () => {
  it.each([
    ['127.0.0.1', true],
    ['[::1]', true],
    ['::1', true],
    ['example.com', false],
    ['2130706433', false],
  ])('%s → %s', (host, expected) => {
    expect(isIpLiteral(host)).toBe(expected);
  });
});

describe('host patterns', () => {
  const match = (pattern: string, host: string) => {
    const parsed = parseHostPattern(pattern);
    const canonical = canonicalHost(host);
    if (!parsed.ok || canonical === null) throw new Error('bad row');
    return hostMatches(parsed.pattern, canonical);
  };

  it.each([
    ['example.com', 'example.com', true],
    ['example.com', 'www.example.com', false],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'a.b.c.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'example.com.evil.com', false],
    ['*.example.com', 'badexample.com', false],
    ['*.EXAMPLE.com.', 'a.example.com', true],
    ['*', 'anything.at.all', true],
    ['*', '10.0.0.1', true],
    ['2130706433', '127.0.0.1', true],
    ['[::ffff:7f00:1]', '127.0.0.1', true],
    ['127.0.0.1', 'localhost', false],
  ])('%s vs %s → %s', (pattern, host, expected) => {
    expect(match(pattern, host)).toBe(expected);
  });

  it.each(['api.*.com', 'a*b.com', '*example.com', '**.example.com', '*.*.com', 'example.*', '', '*.127.0.0.1', '*.1.2'])(
    'refuses %j',
    (pattern) => {
      expect(parseHostPattern(pattern).ok).toBe(false);
    },
  );

  it('reads ports on allowedDomains entries', () => {
    expect(parseDomainEntry('api.example.com:8443')).toMatchObject({ ok: true, entry: { port: 8443 } });
    expect(parseDomainEntry('[::1]:8080')).toMatchObject({ ok: true, entry: { host: { text: '[::1]' }, port: 8080 } });
    expect(parseDomainEntry('::1')).toMatchObject({ ok: true, entry: { host: { text: '[::1]' }, port: null } });
    expect(parseDomainEntry('*.example.com:0').ok).toBe(false);
    expect(parseDomainEntry('example.com:+80').ok).toBe(false);
    expect(parseDomainEntry('example.com:').ok).toBe(false);
  });
});
