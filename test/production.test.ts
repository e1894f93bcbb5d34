/**
 * What an operator relies on beyond a single run: encrypted answers,
 * environment from headers, rate limits, the canonical log line with no
 * secrets in the log, metrics, and the OpenAPI document, all through the
 * real HTTP API and engine.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { compactDecrypt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXECUTION_LOG_FIELDS, EXECUTION_LOG_MESSAGE } from '../server/execution-log.ts';
import { ExecuteSuccessSchema } from '../server/execute-response.ts';
import { describeWithDocker } from './support/docker.ts';
import { mintToken, TEST_AUDIENCE, TEST_HS_SECRET, TEST_ISSUER } from './support/jwt.ts';
import { startTestService, type TestService } from './support/service.ts';
import { startSeedWorld, type SeedWorld } from './support/seed-world.ts';


const KEY = Buffer.alloc(32, 0x5a);
const KEY_TEXT = KEY.toString('base64url');
const ADMIN_TOKEN = 'admin-token-for-the-production-tests';

async function decrypt(body: any): Promise<any> {
  expect(body).toEqual({ encrypted: true, data: expect.any(String) });
  const { plaintext } = await compactDecrypt(body.data, KEY);
  return JSON.parse(new TextDecoder().decode(plaintext));
}

const STRIPE_GET = 'const https = require("https"); https.get("https://api.stripe.com/v1/products", r => console.log(r.statusCode));';
const GITHUB_GET = 'const https = require("https"); https.get("https://api.github.com/users/github", r => console.log(r.statusCode));';

describeWithDocker('production features', () => {
  let world: SeedWorld;
  let service: TestService;
  const auth = () => ({ authorization: `Bearer ${world.token}` });

  beforeAll(async () => {
    world = await startSeedWorld({ RESPONSE_ENCRYPTION_KEY: KEY_TEXT, ADMIN_TOKEN });
    service = world.service;
  });
  afterAll(async () => {
    await world?.close();
  });

  describe('encrypt_messages', () => {
    it('encrypts a success so that jose decrypts it to the plain answer', async () => {
      const response = await service.post('/execute', { code: 'console.log("secret output")', encrypt_messages: true }, auth());
      expect(response.status).toBe(200);
      expect(response.text).not.toContain('secret output');
      const plain = await decrypt(response.json);
      expect(plain.success).toBe(true);
      expect(plain.data).toMatchObject({ stdout: 'secret output\n', code: 0, policyInfo: { source: 'jwt' } });
      expect(response.headers.get('x-request-id')).toBeTruthy();
    });

    it('encrypts errors: a bad field, and a bad token, keeping their status and headers', async () => {
      const invalid = await service.post('/execute', { code: 42, encrypt_messages: true }, auth());
      expect(invalid.status).toBe(400);
      expect(await decrypt(invalid.json)).toMatchObject({ success: false, code: 'INVALID_REQUEST', details: [{ field: 'code' }] });

      const unauthorized = await service.post('/execute', { code: '1', encrypt_messages: true }, { authorization: 'Bearer not.a.jwt' });
      expect(unauthorized.status).toBe(401);
      expect(unauthorized.headers.get('www-authenticate')).toMatch(/invalid_token/);
      expect(await decrypt(unauthorized.json)).toMatchObject({ success: false, code: expect.stringMatching(/^TOKEN_/) });
    });

    it('answers plainly when the body cannot be read, since it cannot say encryption was asked for', async () => {
      const response = await service.post('/execute', '{"encrypt_messages": true, "code": ', auth());
      expect(response.status).toBe(400);
      expect(response.json).toMatchObject({ success: false, code: 'INVALID_REQUEST' });
    });

    it('refuses with 400 on a server without a key', async () => {
      const plain = await startTestService({});
      try {
        const response = await plain.post('/execute', { code: '1', encrypt_messages: true });
        expect(response.status).toBe(400);
        expect(response.json).toMatchObject({ success: false, code: 'ENCRYPTION_UNAVAILABLE', details: [{ field: 'encrypt_messages' }] });
        expect(response.json.error).toMatch(/RESPONSE_ENCRYPTION_KEY/);
      } finally {
        await plain.close();
      }
    });
  });

  describe('environment from X-Env-* headers', () => {
    it('reaches the program, upper-cased, the body winning over a header', async () => {
      const response = await service.post(
        '/execute',
        { code: 'console.log(JSON.stringify([process.env.GREETING, process.env.API_KEY, process.env.BOTH]))', env: { BOTH: 'body' } },
        { ...auth(), 'X-Env-Greeting': 'hello', 'x-env-api-key': 'k-123', 'X-Env-BOTH': 'header' },
      );
      expect(response.status, response.text).toBe(200);
      expect(JSON.parse(response.json.data.stdout)).toEqual(['hello', 'k-123', 'body']);
    });

    it.each([
      ['a bad name', { 'X-Env-1BAD': 'x' }, /not a valid variable name/],
      ['an oversize value', { 'X-Env-BIG': 'x'.repeat(5000) }, /limit is/],
      ['HTTPS_PROXY', { 'X-Env-HTTPS_PROXY': 'http://127.0.0.1:1' }, /HTTPS_PROXY is reserved/],
      ['https-proxy in any case', { 'x-env-https-proxy': 'http://127.0.0.1:1' }, /HTTPS_PROXY is reserved/],
    ])('refuses %s with 400 naming the header', async (_case, headers, message) => {
      const response = await service.post('/execute', { code: 'console.log(1)' }, { ...auth(), ...headers });
      expect(response.status).toBe(400);
      expect(response.json.code).toBe('INVALID_REQUEST');
      expect(response.json.details[0].field).toMatch(/^header x-env-/);
      expect(response.json.details[0].message).toMatch(message);
    });
  });

  describe('logs and metrics', () => {
    const metric = async (name: string, labels = ''): Promise<number> => {
      const text = await (await fetch(`${service.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };

    it('counts executions and egress decisions, allowed and blocked', async () => {
      const before = {
        ok: await metric('sandbox_executions_total', '{outcome="ok"}'),
        allowed: await metric('sandbox_egress_decisions_total', '{result="allowed",reason="allowedDomains"}'),
        blocked: await metric('sandbox_egress_decisions_total', '{result="blocked",reason="allowedDomains"}'),
        durations: await metric('sandbox_execution_duration_seconds_count', '{outcome="ok"}'),
        hits: await metric('sandbox_policy_cache_hits_total'),
      };
      const allowed = await world.run({ code: STRIPE_GET });
      expect(allowed.stdout).toBe('200\n');
      const blocked = await world.run({ code: GITHUB_GET });
      expect(blocked.stdout).toBe('403\n');

      const response = await fetch(`${service.url}/metrics`);
      expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
      expect(await metric('sandbox_executions_total', '{outcome="ok"}')).toBe(before.ok + 2);
      expect(await metric('sandbox_execution_duration_seconds_count', '{outcome="ok"}')).toBe(before.durations + 2);
      expect(await metric('sandbox_egress_decisions_total', '{result="allowed",reason="allowedDomains"}')).toBe(before.allowed + 1);
      expect(await metric('sandbox_egress_decisions_total', '{result="blocked",reason="allowedDomains"}')).toBe(before.blocked + 1);
      // The seed user's policy was cached by the earlier tests.
      expect(await metric('sandbox_policy_cache_hits_total')).toBeGreaterThan(before.hits);
      const text = await (await fetch(`${service.url}/metrics`)).text();
      for (const name of ['sandbox_queue_depth', 'sandbox_pool_size', 'sandbox_pool_waiting', 'sandbox_policy_cache_misses_total', 'sandbox_policy_fetch_failures_total']) {
        expect(text).toMatch(new RegExp(`^${name} \\d+`, 'm'));
      }
    });

    it('writes one canonical line per execution, and never the token, the admin token or the key', async () => {
      const response = await service.post('/execute', { code: GITHUB_GET }, { ...auth(), 'x-request-id': 'canonical-line-test' });
      expect(response.status).toBe(200);
      // An administrator call and a refused token put both secrets in front of the logger too.
      await fetch(`${service.url}/admin/policy-cache`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      await service.post('/execute', { code: '1' }, { authorization: `Bearer ${world.token}x` });

      const lines = service.logLines.filter((l) => l.msg === EXECUTION_LOG_MESSAGE && l.requestId === 'canonical-line-test');
      expect(lines).toHaveLength(1);
      const line = lines[0];
      for (const field of EXECUTION_LOG_FIELDS) expect(line).toHaveProperty(field);
      expect(line).toMatchObject({
        executionId: response.json.data.executionId,
        subject: 'seed-user',
        policySource: 'jwt',
        language: 'node',
        outcome: 'ok',
        exitCode: 0,
        signal: null,
        timedOut: false,
        oomKilled: false,
        allowedRequests: 0,
        blockedRequests: 1,
        blockedHosts: ['api.github.com'],
      });
      expect(typeof line.durationMs).toBe('number');
      // The proxy's decision line for the same execution.
      expect(service.logLines).toContainEqual(
        expect.objectContaining({ msg: 'egress decision', executionId: line.executionId, host: 'api.github.com', allowed: false }),
      );

      const log = service.logLines.map((l) => JSON.stringify(l)).join('\n');
      const [, payload, signature] = world.token.split('.');
      expect(log).not.toContain(world.token);
      expect(log).not.toContain(payload);
      expect(log).not.toContain(signature);
      expect(log).not.toContain(ADMIN_TOKEN);
      expect(log).not.toContain(KEY_TEXT);
      expect(log).not.toContain(KEY.toString('hex'));
    });
  });

  describe('GET /openapi.json', () => {
    it('validates as OpenAPI 3.1 and describes the answers /execute really gives', async () => {
      const document: any = await (await fetch(`${service.url}/openapi.json`)).json();
      const result = await new Validator().validate(document);
      expect(result.errors).toBeUndefined();
      expect(document.paths['/execute'].post.requestBody).toBeDefined();
      // The response schema is strict: a field the document does not describe fails here.
      const allowed = await service.post('/execute', { code: STRIPE_GET }, auth());
      expect(ExecuteSuccessSchema.safeParse(allowed.json).error).toBeUndefined();
    });
  });
});

describeWithDocker('rate limits', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({
      JWT_SECRET: TEST_HS_SECRET,
      JWT_ISSUER: TEST_ISSUER,
      JWT_AUDIENCE: TEST_AUDIENCE,
      RATE_LIMIT_SUBJECT_MAX: '2',
      RATE_LIMIT_IP_MAX: '3',
      RATE_LIMIT_WINDOW_MS: '60000',
    });
  });
  afterAll(async () => {
    await service?.close();
  });

  // Invalid bodies count against the limit too, and run no container.
  const attempt = (headers: Record<string, string> = {}) => service.post('/execute', { code: 1 }, headers);
  const bearer = async (sub: string) => ({ authorization: `Bearer ${await mintToken(TEST_HS_SECRET, { alg: 'HS256', sub })}` });

  it('answers 429 with Retry-After and RateLimit headers past a subject’s limit; another subject is unaffected', async () => {
    const alice = await bearer('alice');
    const first = await attempt(alice);
    expect(first.status).toBe(400);
    expect(first.headers.get('ratelimit-limit')).toBe('2');
    expect(first.headers.get('ratelimit-remaining')).toBe('1');
    expect(Number(first.headers.get('ratelimit-reset'))).toBeGreaterThan(0);
    expect((await attempt(alice)).status).toBe(400);

    const limited = await attempt(alice);
    expect(limited.status).toBe(429);
    expect(limited.json).toMatchObject({ success: false, code: 'RATE_LIMITED' });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');

    // A fresh token for the same subject shares its limit; another subject has its own.
    expect((await attempt(await bearer('alice'))).status).toBe(429);
    expect((await attempt(await bearer('bob'))).status).toBe(400);
  });

  it('limits anonymous callers per address, apart from subjects', async () => {
    for (let i = 0; i < 3; i++) expect((await attempt()).status).toBe(400);
    const limited = await attempt();
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBeTruthy();
    expect(limited.headers.get('ratelimit-limit')).toBe('3');
    expect((await attempt(await bearer('carol'))).status).toBe(400);
  });
});
