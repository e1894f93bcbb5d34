import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { SecretBinding } from '../../policies/index.ts';
import { collect, split } from '../../test/support/streams.ts';
import {
  bodyKind,
  bodyNeedsSubstitution,
  checkHostForPlaceholders,
  chunkedBodyHeaders,
  createBodySubstitution,
  SecretRefusalError,
  substituteBodyBuffer,
  substituteRequestHead,
} from './index.ts';
import type { RequestHead } from './index.ts';

const STRIPE_VALUE = 'sk_test_51H"x/ü+y z&=Kq9';
const binding = SecretBinding.fromSpecs([
  { name: 'STRIPE_KEY', value: STRIPE_VALUE, hosts: ['api.stripe.com'], in: ['header'], source: 'request' },
  { name: 'QUERY_KEY', value: 'q&v=1 2/ok', hosts: ['api.stripe.com'], in: ['query'], source: 'request' },
  { name: 'BODY_KEY', value: 'b"ody\\val+ue', hosts: ['api.stripe.com'], in: ['body', 'header'], source: 'request' },
]);
const [stripe, query, bodySecret] = binding.secrets;
if (stripe === undefined || query === undefined || bodySecret === undefined) throw new Error('fixture');
const P = stripe.placeholder;
const Q = query.placeholder;
const B = bodySecret.placeholder;
const latin1 = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
const basic = (credentials: string) => `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;

const head = (overrides: Partial<RequestHead>): RequestHead => ({ host: 'api.stripe.com', port: 443, target: '/v1/charges', headers: [], ...overrides });

describe('substituteRequestHead', () => {
  it.each<[string, Partial<RequestHead>, { target?: string; headers?: Array<[string, string]>; used: string[] }]>([
    ['a bearer header toward its host', { headers: [['Authorization', `Bearer ${P}`]] }, { headers: [['Authorization', `Bearer ${latin1(STRIPE_VALUE)}`]], used: ['STRIPE_KEY'] }],
    ['a canonicalised host', { host: 'API.Stripe.com.', headers: [['x-api-key', P]] }, { headers: [['x-api-key', latin1(STRIPE_VALUE)]], used: ['STRIPE_KEY'] }],
    ['Basic auth user:placeholder', { headers: [['authorization', basic(`user:${P}`)]] }, { headers: [['authorization', basic(`user:${STRIPE_VALUE}`)]], used: ['STRIPE_KEY'] }],
    ['a query parameter, percent-encoded', { target: `/v1/x?key=${Q}&a=1` }, { target: `/v1/x?key=${encodeURIComponent('q&v=1 2/ok')}&a=1`, used: ['QUERY_KEY'] }],
    ['two secrets in two places', { target: `/v1?k=${Q}`, headers: [['authorization', `Bearer ${P}`], ['x-b', B]] }, { target: `/v1?k=${encodeURIComponent('q&v=1 2/ok')}`, used: ['QUERY_KEY', 'STRIPE_KEY', 'BODY_KEY'] }],
    ['no placeholder at all', { target: '/v1?x=sbx_secret_', headers: [['x-a', 'sbx_secret_OTHER_abc']] }, { target: '/v1?x=sbx_secret_', headers: [['x-a', 'sbx_secret_OTHER_abc']], used: [] }],
    ['Proxy-Authorization, which is never forwarded', { headers: [['Proxy-Authorization', basic(`u:${P}`)]] }, { headers: [['Proxy-Authorization', basic(`u:${P}`)]], used: [] }],
  ])('substitutes %s', (_case, overrides, expected) => {
    const result = substituteRequestHead(binding, head(overrides));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    if (expected.target !== undefined) expect(result.target).toBe(expected.target);
    if (expected.headers !== undefined) expect(result.headers).toEqual(expected.headers);
    expect(result.used).toEqual(expected.used);
  });

  it.each<[string, Partial<RequestHead>, string]>([
    ['a header toward another host', { host: 'api.github.com', headers: [['authorization', `Bearer ${P}`]] }, 'Secret STRIPE_KEY may not be sent to api.github.com'],
    ['Basic auth toward another host', { host: 'api.github.com', headers: [['authorization', basic(`user:${P}`)]] }, 'Secret STRIPE_KEY may not be sent to api.github.com'],
    ['a query toward another host', { host: 'api.github.com', target: `/search?q=${P}` }, 'Secret STRIPE_KEY may not be sent to api.github.com'],
    ['a header-only secret in the query', { target: `/v1?key=${P}` }, 'Secret STRIPE_KEY may not be sent to api.stripe.com in the query'],
    ['a query-only secret in a header', { headers: [['x-key', Q]] }, 'Secret QUERY_KEY may not be sent to api.stripe.com in a header (x-key)'],
    ['a placeholder in the path', { target: `/v1/${P}/charges` }, 'Secret STRIPE_KEY may not be sent to api.stripe.com in the path'],
    ['a placeholder in the path toward another host', { host: 'api.github.com', target: `/${P}` }, 'Secret STRIPE_KEY may not be sent to api.github.com'],
    ['a placeholder in a header name', { headers: [[P, '1']] }, 'Secret STRIPE_KEY may not be sent to api.stripe.com in a header name'],
    ['a placeholder in the host', { host: `${P.toLowerCase()}.evil.com` }, `Secret STRIPE_KEY may not be sent to ${P.toLowerCase()}.evil.com in the host name`],
    ['the wrong port', { port: 8443, headers: [['authorization', `Bearer ${P}`]] }, 'Secret STRIPE_KEY may not be sent to api.stripe.com'],
  ])('refuses %s', (_case, overrides, reason) => {
    const result = substituteRequestHead(binding, head(overrides));
    expect(result).toMatchObject({ ok: false, refusal: { status: 403, code: 'secret-misplaced', reason } });
    expect(JSON.stringify(result)).not.toContain(STRIPE_VALUE);
  });

  it('refuses a CONNECT target carrying a placeholder, in any case', () => {
    expect(checkHostForPlaceholders(binding, `${P}.example.com`)?.reason).toMatch(/^Secret STRIPE_KEY may not be sent to .* in the host name$/);
    expect(checkHostForPlaceholders(binding, 'api.stripe.com')).toBeNull();
  });

  it('leaves everything alone with an empty binding', () => {
    const request = head({ target: `/x?k=${P}`, headers: [['a', P]] });
    expect(substituteRequestHead(SecretBinding.EMPTY, request)).toEqual({ ok: true, target: request.target, headers: [['a', P]], used: [] });
  });
});


const stripeBody = (contentType: string) => ({ host: 'api.stripe.com', port: 443, contentType });

describe('request body substitution', () => {
  it.each([
    ['application/json; charset=utf-8', 'json'],
    ['application/vnd.api+json', 'json'],
    ['application/x-www-form-urlencoded', 'form'],
    ['text/plain', 'text'],
    ['multipart/form-data; boundary=x', 'other'],
    [undefined, 'other'],
  ])('reads %s as %s', (contentType, kind) => {
    expect(bodyKind(contentType)).toBe(kind);
  });

  it.each([
    ['application/json', `{"key":"${B}"}`, `{"key":${JSON.stringify('b"ody\\val+ue')}}`],
    ['application/x-www-form-urlencoded', `a=1&key=${B}`, `a=1&key=${encodeURIComponent('b"ody\\val+ue')}`],
    ['text/plain', `key ${B} end`, 'key b"ody\\val+ue end'],
  ])('encodes the value for a %s body', (contentType, body, expected) => {
    const result = substituteBodyBuffer(binding, stripeBody(contentType), Buffer.from(body));
    expect(result.ok && result.body.toString()).toBe(expected);
    expect(result.ok && result.used).toEqual(['BODY_KEY']);
  });

  it('keeps a JSON body valid JSON with the value in place', () => {
    const result = substituteBodyBuffer(binding, stripeBody('application/json'), Buffer.from(`{"key":"Bearer ${B}"}`));
    expect(result.ok && JSON.parse(result.body.toString())).toEqual({ key: 'Bearer b"ody\\val+ue' });
  });

  it.each([
    ['another host', { host: 'api.github.com', port: 443, contentType: 'application/json' }, `{"k":"${B}"}`, 'Secret BODY_KEY may not be sent to api.github.com'],
    ['a header-only secret', stripeBody('application/json'), `{"k":"${P}"}`, 'Secret STRIPE_KEY may not be sent to api.stripe.com in the body'],
    ['a binary body', stripeBody('application/octet-stream'), `xx${B}xx`, 'Secret BODY_KEY may not be sent to api.stripe.com in the body (application/octet-stream: only JSON, form and text bodies are substituted)'],
  ])('refuses a placeholder toward %s', (_case, context, body, reason) => {
    expect(substituteBodyBuffer(binding, context, Buffer.from(body))).toMatchObject({ ok: false, refusal: { status: 403, reason } });
  });

  it('switches a streamed body to chunked', () => {
    expect(chunkedBodyHeaders([['Content-Type', 'application/json'], ['Content-Length', '42']])).toEqual([['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked']]);
    expect(chunkedBodyHeaders([['transfer-encoding', 'chunked']])).toEqual([['transfer-encoding', 'chunked']]);
  });

  it('does not search an encoded body', () => {
    expect(bodyNeedsSubstitution(binding, { ...stripeBody('application/json'), contentEncoding: 'gzip' })).toBe(false);
    expect(bodyNeedsSubstitution(binding, { ...stripeBody('application/json'), contentEncoding: 'identity' })).toBe(true);
    expect(bodyNeedsSubstitution(SecretBinding.EMPTY, stripeBody('application/json'))).toBe(false);
  });

  it('finds a placeholder split at every position across chunks', async () => {
    const body = Buffer.from(`{"a":"${B}","b":"${B}"}`);
    const expected = `{"a":${JSON.stringify('b"ody\\val+ue')},"b":${JSON.stringify('b"ody\\val+ue')}}`;
    for (let cut = 1; cut < body.length; cut += 1) {
      const stream = createBodySubstitution(binding, stripeBody('application/json'), { holdBytes: 0 });
      const out = await collect([body.subarray(0, cut), body.subarray(cut)], [stream]);
      expect(out.toString(), `cut at ${cut}`).toBe(expected);
      expect(stream.used).toEqual(['BODY_KEY']);
    }
    // One byte at a time, too.
    const out = await collect(split(body, [1]), [createBodySubstitution(binding, stripeBody('application/json'))]);
    expect(out.toString()).toBe(expected);
  });

  it('streams a 1 MiB body in odd chunks to the same result as the whole-buffer form', async () => {
    const filler = 'x'.repeat(997);
    let text = '';
    while (text.length < 1024 * 1024) text += `${filler}${B}\n`;
    const body = Buffer.from(text);
    const whole = substituteBodyBuffer(binding, stripeBody('text/plain'), body);
    if (!whole.ok) throw new Error('refused');
    const streamed = await collect(split(body, [65_536, 7, 4093, 31]), [createBodySubstitution(binding, stripeBody('text/plain'), { holdBytes: 0 })]);
    expect(streamed.equals(whole.body)).toBe(true);
    expect(streamed.includes(B)).toBe(false);
    expect(streamed.toString().split('b"ody\\val+ue').length - 1).toBe(text.split(B).length - 1);
  });

  it('fails before emitting anything when a misplaced placeholder is within the held bytes', async () => {
    const body = Buffer.from(`${'a'.repeat(200_000)}${P}${'b'.repeat(1000)}`);
    const stream = createBodySubstitution(binding, stripeBody('text/plain'));
    let emitted = 0;
    stream.on('data', (chunk: Buffer) => {
      emitted += chunk.length;
    });
    const failure = await pipeline(Readable.from(split(body, [16_384])), stream).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(SecretRefusalError);
    expect((failure as SecretRefusalError).refusal.reason).toBe('Secret STRIPE_KEY may not be sent to api.stripe.com in the body');
    expect(emitted).toBe(0);
  });
});
