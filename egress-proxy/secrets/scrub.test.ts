import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SecretBinding } from '../../policies/index.ts';
import { collect, split } from '../../test/support/streams.ts';
import { planResponseScrub, RUN_CAP, scrubberFor, scrubHeaders, scrubText } from './index.ts';

const VALUE = 'sk_live_51H"x/ü+y z&=Kq9~';
const OTHER = 'ghp_0123456789abcdefABCDEF';
const binding = SecretBinding.fromSpecs([
  { name: 'STRIPE_KEY', value: VALUE, hosts: ['api.stripe.com'], in: ['header'], source: 'request' },
  { name: 'GH_TOKEN', value: OTHER, hosts: ['api.github.com'], in: ['header'], source: 'policy' },
]);
const P = binding.secrets[0]?.placeholder ?? '';
const G = binding.secrets[1]?.placeholder ?? '';
const b64 = (text: string, alphabet: 'base64' | 'base64url' = 'base64') => Buffer.from(text, 'utf8').toString(alphabet);
const pctLower = (text: string) => encodeURIComponent(text).replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase());
const pyQuote = (text: string) =>
  [...Buffer.from(text, 'utf8')].map((byte) => (/[A-Za-z0-9_.~-]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
const jsonAscii = (text: string) => JSON.stringify(text).slice(1, -1).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** Every way the value could still be read in `text`: raw, escaped, or its base64 at any alignment. */
function leaks(text: string, value = VALUE): string[] {
  const bytes = Buffer.from(value, 'utf8');
  const forms = [value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value), pyQuote(value)];
  for (const skip of [0, 1, 2]) {
    const whole = bytes.subarray(skip, skip + Math.floor((bytes.length - skip) / 3) * 3);
    forms.push(whole.toString('base64'), whole.toString('base64url'));
  }
  return forms.filter((form) => text.includes(form));
}


const scrubber = scrubberFor(binding);

describe('scrubbing the forms a server echoes', () => {
  it.each([
    ['raw', `key=${VALUE};`, `key=${P};`],
    ['JSON-escaped', JSON.stringify({ key: VALUE }), JSON.stringify({ key: P })],
    ['JSON-escaped, ASCII only (Python json.dumps)', `{"key": "${jsonAscii(VALUE)}"}`, `{"key": "${P}"}`],
    ['JSON with escaped slashes', `{"key":"${JSON.stringify(VALUE).slice(1, -1).replace(/\//g, '\\/')}"}`, `{"key":"${P}"}`],
    ['percent-encoded', `?key=${encodeURIComponent(VALUE)}&x=1`, `?key=${P}&x=1`],
    ['percent-encoded, lower-case hex', `?key=${pctLower(VALUE)}`, `?key=${P}`],
    ['percent-encoded, every reserved byte', `?key=${pyQuote(VALUE)}`, `?key=${P}`],
    ['form-encoded', `key=${encodeURIComponent(VALUE).replace(/%20/g, '+')}`, `key=${P}`],
    ['base64', `"data":"${b64(VALUE)}"`, `"data":"${b64(P)}"`],
    ['base64url', `"data":"${b64(VALUE, 'base64url')}"`, `"data":"${b64(P, 'base64url')}"`],
    ['Basic auth of user:value', `"authorization":"Basic ${b64(`user:${VALUE}`)}"`, `"authorization":"Basic ${b64(`user:${P}`)}"`],
    ['two secrets', `${OTHER} and ${VALUE}`, `${G} and ${P}`],
  ])('%s', (_case, echoed, expected) => {
    const out = scrubber.scrubText(echoed);
    expect(out).toBe(expected);
    expect(leaks(out)).toEqual([]);
  });

  it.each(['', 'u', 'us', 'use', 'user', 'admin', 'a:b:c'])('re-encodes Basic %j:value at its byte alignment as user:placeholder', (user) => {
    const out = scrubber.scrubText(`Authorization: Basic ${b64(`${user}:${VALUE}`)}\r\n`);
    expect(out).toBe(`Authorization: Basic ${b64(`${user}:${P}`)}\r\n`);
  });

  it.each([0, 1, 2, 3, 4, 5])('finds the value inside a longer base64 token with %d leading bytes', (lead) => {
    const text = `${'L'.repeat(lead)}${VALUE}TRAILER`;
    const out = scrubber.scrubText(`x ${b64(text)} y`);
    expect(leaks(out)).toEqual([]);
    expect(out).toBe(`x ${b64(`${'L'.repeat(lead)}${P}TRAILER`)} y`);
  });

  it('overwrites the value inside a base64 run too long to re-encode, keeping its length', () => {
    const blob = b64(`${'z'.repeat(RUN_CAP)}${VALUE}${'z'.repeat(100)}`);
    const out = scrubber.scrubText(blob);
    expect(out).toHaveLength(blob.length);
    expect(leaks(out)).toEqual([]);
    expect(Buffer.from(out, 'base64').includes(Buffer.from(VALUE))).toBe(false);
  });

  it.each([
    [`out: ${VALUE.slice(0, 10)}`, { truncated: true }, `out: ${P.slice(0, 10)}`],
    [`out: ${VALUE.slice(0, 10)}`, {}, `out: ${VALUE.slice(0, 10)}`],
    [`out: ${VALUE.slice(0, 3)}`, { truncated: true }, `out: ${VALUE.slice(0, 3)}`],
    [`a ${VALUE} b ${OTHER.slice(0, 12)}`, { truncated: true }, `a ${P} b ${G.slice(0, 12)}`],
  ])('scrubText(%j, %j) masks a value cut by the output cap', (text, options, expected) => {
    expect(scrubText(text, binding, options)).toBe(expected);
  });

  it('leaves text without values untouched', () => {
    const text = 'nothing here sk_live_ but not the key, c2tf';
    expect(scrubText(text, binding)).toBe(text);
    expect(scrubText(`x ${VALUE}`, SecretBinding.EMPTY)).toBe(`x ${VALUE}`);
  });

  it('scrubs header values, as latin1 views of UTF-8 bytes', () => {
    const headers = scrubHeaders(binding, [
      ['X-Echo-Authorization', `Bearer ${Buffer.from(VALUE, 'utf8').toString('latin1')}`],
      ['Set-Cookie', `k=${encodeURIComponent(VALUE)}; Path=/`],
      ['Content-Type', 'application/json'],
    ]);
    expect(headers).toEqual([
      ['X-Echo-Authorization', `Bearer ${P}`],
      ['Set-Cookie', `k=${P}; Path=/`],
      ['Content-Type', 'application/json'],
    ]);
  });
});

describe('scrubbing a streamed body', () => {
  const echo = Buffer.from(
    JSON.stringify({
      headers: { authorization: `Basic ${b64(`user:${VALUE}`)}`, 'x-key': VALUE },
      query: encodeURIComponent(VALUE),
      body: b64(VALUE),
      other: OTHER,
    }),
  );
  const expected = scrubber.scrubBuffer(echo);

  it('matches the whole-buffer result with the body cut at every position', async () => {
    expect(leaks(expected.toString())).toEqual([]);
    for (let cut = 1; cut < echo.length; cut += 1) {
      const out = await collect([echo.subarray(0, cut), echo.subarray(cut)], [scrubber.createStream()]);
      expect(out.toString(), `cut at ${cut}`).toBe(expected.toString());
    }
  });

  it('matches it one byte at a time', async () => {
    expect((await collect(split(echo, [1]), [scrubber.createStream()])).toString()).toBe(expected.toString());
  });

  it('scrubs a 1 MiB body in odd chunks, every echo found, with bounded look-behind', async () => {
    const parts: string[] = [];
    let size = 0;
    for (let i = 0; size < 1024 * 1024; i += 1) {
      const part = `${'w'.repeat(300 + (i % 17))} ${i % 3 === 0 ? VALUE : i % 3 === 1 ? `Basic ${b64(`u${'x'.repeat(i % 4)}:${VALUE}`)}` : encodeURIComponent(VALUE)}\n`;
      parts.push(part);
      size += part.length;
    }
    const body = Buffer.from(parts.join(''));
    const stream = scrubber.createStream();
    let largestChunk = 0;
    stream.on('data', (chunk: Buffer) => {
      largestChunk = Math.max(largestChunk, chunk.length);
    });
    const out = await collect(split(body, [65_536, 13, 8191, 3]), [stream]);
    expect(out.equals(scrubber.scrubBuffer(body))).toBe(true);
    expect(leaks(out.toString())).toEqual([]);
    const text = out.toString();
    expect(text.split(P).length - 1).toBe(parts.filter((_, i) => i % 3 !== 1).length);
    for (const user of ['u', 'ux', 'uxx', 'uxxx']) expect(text.split(`Basic ${b64(`${user}:${P}`)}\n`).length - 1).toBeGreaterThan(parts.length / 15);
    expect(largestChunk).toBeLessThan(65_536 + 2 * RUN_CAP);
  });
});

describe('planResponseScrub', () => {
  const body = Buffer.from(JSON.stringify({ echoed: VALUE, b64: b64(VALUE) }));
  const stripe = { host: 'api.stripe.com', port: 443, carriedSecret: true };

  it.each([
    ['gzip', zlib.gzipSync(body)],
    ['deflate', zlib.deflateSync(body)],
    ['br', zlib.brotliCompressSync(body)],
    ['gzip, br', zlib.brotliCompressSync(zlib.gzipSync(body))],
    [undefined, body],
    ['identity', body],
  ])('decodes %s and scrubs', async (encoding, wire) => {
    const plan = planResponseScrub(binding, { ...stripe, contentEncoding: encoding });
    expect(plan.kind).toBe('scrub');
    if (plan.kind !== 'scrub') return;
    expect(plan.dropHeaders).toEqual(encoding === undefined || encoding === 'identity' ? ['content-length'] : ['content-length', 'content-encoding']);
    const out = await collect(split(wire, [17]), plan.createTransforms());
    expect(JSON.parse(out.toString())).toEqual({ echoed: P, b64: b64(P) });
  });

  it('refuses a body in an unknown encoding when the upstream knows a value', () => {
    const refused = { kind: 'refuse', refusal: { status: 502, code: 'secret-unscrubbable', reason: 'Response from api.stripe.com has Content-Encoding "zstd", which the proxy cannot scrub of secrets' } };
    expect(planResponseScrub(binding, { ...stripe, contentEncoding: 'zstd' })).toEqual(refused);
    // Bound to the host, even without a secret in this request.
    expect(planResponseScrub(binding, { ...stripe, carriedSecret: false, contentEncoding: 'zstd' })).toEqual(refused);
  });

  it('lets an encoded body from a host no secret was sent to pass unread', () => {
    expect(planResponseScrub(binding, { host: 'example.com', port: 443, carriedSecret: false, contentEncoding: 'zstd' })).toEqual({ kind: 'pass' });
    expect(planResponseScrub(binding, { host: 'example.com', port: 443, carriedSecret: false, contentEncoding: 'gzip' })).toEqual({ kind: 'pass' });
    expect(planResponseScrub(binding, { host: 'example.com', port: 443, carriedSecret: false, contentEncoding: undefined }).kind).toBe('scrub');
    expect(planResponseScrub(SecretBinding.EMPTY, { ...stripe, contentEncoding: 'zstd' })).toEqual({ kind: 'pass' });
  });
});
