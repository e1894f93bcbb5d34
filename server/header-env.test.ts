import { describe, expect, it } from 'vitest';
import { envFromHeaders, MAX_HEADER_ENV_VALUE_BYTES, MAX_HEADER_ENV_VARS } from './header-env.ts';

describe('envFromHeaders', () => {
  it('upper-cases names, reads - as _, and ignores other headers', () => {
    expect(envFromHeaders({ 'x-env-greeting': ['hi'], 'x-env-api-key': ['k'], 'x-env-a_b': ['c'], 'content-type': ['application/json'] })).toEqual({
      ok: true,
      env: { GREETING: 'hi', API_KEY: 'k', A_B: 'c' },
    });
  });

  it('reads values as UTF-8 (Node hands header bytes over as latin1)', () => {
    const latin1 = Buffer.from('grüße', 'utf8').toString('latin1');
    expect(envFromHeaders({ 'x-env-word': [latin1] })).toEqual({ ok: true, env: { WORD: 'grüße' } });
  });

  it.each([
    ['a name starting with a digit', { 'x-env-1abc': ['x'] }, /not a valid variable name/],
    ['an empty name', { 'x-env-': ['x'] }, /not a valid variable name/],
    ['a name with a dot', { 'x-env-a.b': ['x'] }, /not a valid variable name/],
    ['HTTPS_PROXY', { 'x-env-https_proxy': ['http://evil'] }, /HTTPS_PROXY is reserved/],
    ['Https-Proxy', { 'x-env-https-proxy': ['http://evil'] }, /HTTPS_PROXY is reserved/],
    ['NODE_EXTRA_CA_CERTS', { 'x-env-node-extra-ca-certs': ['/tmp/ca'] }, /reserved/],
    ['a repeated header', { 'x-env-a': ['1', '2'] }, /more than once/],
    ['two spellings of one name', { 'x-env-a-b': ['1'], 'x-env-a_b': ['2'] }, /more than once/],
    ['an oversize value', { 'x-env-big': ['x'.repeat(MAX_HEADER_ENV_VALUE_BYTES + 1)] }, /limit is/],
    ['invalid UTF-8', { 'x-env-bad': ['\xff\xfe'] }, /not valid UTF-8/],
  ])('refuses %s, naming the header', (_case, headers, message) => {
    const result = envFromHeaders(headers);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems[0]?.field).toMatch(/^header x-env-/);
    expect(result.problems[0]?.message).toMatch(message);
  });

  it('refuses more than the maximum number of variables', () => {
    const headers = Object.fromEntries(Array.from({ length: MAX_HEADER_ENV_VARS + 1 }, (_, i) => [`x-env-v${i}`, ['x']]));
    expect(envFromHeaders(headers).ok).toBe(false);
  });
});
