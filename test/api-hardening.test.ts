/**
 * The API as a hostile caller meets it: cross-site requests (a web page
 * posting text/plain, DNS rebinding with a foreign Host), floods refused
 * before any work, guessed tokens counted against the address, one caller
 * holding every execution slot, and internal details kept from clients.
 * Refusals need no container; the concurrency cap does.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable } from './support/docker.ts';
import { mintToken, TEST_HS_SECRET } from './support/jwt.ts';
import { startTestService, type TestService } from './support/service.ts';

const hasDocker = await dockerAvailable();

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: any;
  text: string;
}

/** node:http, since fetch will not send a Host or X-Forwarded-For of our choosing. */
function raw(url: string, method: string, headers: Record<string, string>, body?: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method, headers }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, json, text });
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}

const hs256 = (sub: string) => mintToken(TEST_HS_SECRET, { alg: 'HS256', sub });

describe('cross-site requests', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService({ JWT_SECRET: TEST_HS_SECRET, EXEC_POOL_SIZE: '0' });
  });
  afterAll(async () => {
    await service?.close();
  });

  it('refuses a text/plain POST (what a web page can send without a preflight) with 415 naming the header', async () => {
    const response = await raw(`${service.url}/execute`, 'POST', { 'content-type': 'text/plain;charset=UTF-8' }, '{"code":"console.log(1)"}');
    expect(response.status).toBe(415);
    expect(response.json).toMatchObject({ success: false, code: 'UNSUPPORTED_MEDIA_TYPE', details: [{ field: 'header content-type' }] });
  });

  it.each(['evil.example', `evil.example:${'PORT'}`, '127.0.0.1.nip.io:PORT', 'localhost.evil.example:PORT'])(
    'refuses Host %s on every route when bound to loopback (DNS rebinding)',
    async (host) => {
      const value = host.replace('PORT', String(service.port));
      for (const [method, path] of [['POST', '/execute'], ['GET', '/healthz'], ['GET', '/api/user/policies']] as const) {
        const response = await raw(`${service.url}${path}`, method, { host: value, 'content-type': 'application/json' }, method === 'POST' ? '{"code":"1"}' : undefined);
        expect(response.status, `${method} ${path}`).toBe(403);
        expect(response.json).toMatchObject({ success: false, code: 'HOST_NOT_ALLOWED' });
        expect(response.json.error).toContain('ALLOWED_HOSTS');
      }
    },
  );

  it.each(['127.0.0.1:PORT', 'localhost:PORT', '[::1]:PORT', 'LOCALHOST:PORT'])('answers Host %s', async (host) => {
    const response = await raw(`${service.url}/healthz`, 'GET', { host: host.replace('PORT', String(service.port)) });
    expect(response.status).toBe(200);
  });

  it('still serves the other routes to a same-machine caller', async () => {
    for (const path of ['/healthz', '/metrics', '/openapi.json']) expect((await fetch(`${service.url}${path}`)).status, path).toBe(200);
    const policies = await fetch(`${service.url}/api/user/policies`, { headers: { authorization: `Bearer ${await hs256('nobody')}` } });
    expect(policies.status).toBe(404);
  });
});

describe('limits before any work', () => {
  it('refuses a flood from one address before verifying its token (429, not 401)', async () => {
    const service = await startTestService({ JWT_SECRET: TEST_HS_SECRET, RATE_LIMIT_ADDRESS_MAX: '2', RATE_LIMIT_AUTH_FAILURES_MAX: '0' });
    try {
      const bad = { authorization: 'Bearer not.a.token' };
      expect((await service.post('/execute', '{"code": ', bad)).status).toBe(401);
      expect((await service.post('/execute', '{"code": ', bad)).status).toBe(401);
      const limited = await service.post('/execute', '{"code": ', bad);
      expect(limited.status).toBe(429);
      expect(limited.json).toMatchObject({ success: false, code: 'RATE_LIMITED' });
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await service.close();
    }
  });

  it('counts refused tokens against the address and then refuses it before checking even a good token', async () => {
    const service = await startTestService({ JWT_SECRET: TEST_HS_SECRET, RATE_LIMIT_AUTH_FAILURES_MAX: '2' });
    try {
      const good = { authorization: `Bearer ${await hs256('alice')}` };
      // Accepted tokens do not count, whatever else is wrong with the request.
      for (let i = 0; i < 3; i++) expect((await service.post('/execute', { code: 1 }, good)).status).toBe(400);
      for (let i = 0; i < 2; i++) expect((await service.post('/execute', { code: '1' }, { authorization: 'Bearer guessed.token.value' })).status).toBe(401);
      const limited = await service.post('/execute', { code: 1 }, good);
      expect(limited.status).toBe(429);
      expect(limited.json).toMatchObject({ success: false, code: 'AUTH_FAILURES_LIMITED' });
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await service.close();
    }
  });

  it.each([
    ['ignores X-Forwarded-For by default', {}, 429],
    ['reads the client address from X-Forwarded-For with TRUST_PROXY=loopback', { TRUST_PROXY: 'loopback' }, 400],
  ])('%s', async (_name, env: Record<string, string>, otherClientStatus) => {
    const service = await startTestService({ JWT_SECRET: TEST_HS_SECRET, RATE_LIMIT_ADDRESS_MAX: '1', ...env });
    try {
      const post = (client: string) => raw(`${service.url}/execute`, 'POST', { 'content-type': 'application/json', 'x-forwarded-for': client }, '{"code":1}');
      expect((await post('203.0.113.1')).status).toBe(400);
      expect((await post('203.0.113.1')).status).toBe(429);
      expect((await post('203.0.113.2')).status).toBe(otherClientStatus);
    } finally {
      await service.close();
    }
  });
});

describe.skipIf(!hasDocker)('one caller cannot hold every execution slot', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService({ JWT_SECRET: TEST_HS_SECRET, EXEC_MAX_CONCURRENT: '4', EXEC_MAX_CONCURRENT_PER_CALLER: '1' });
  });
  afterAll(async () => {
    await service?.close();
  });

  const inFlight = async (): Promise<number> => {
    const text = await (await fetch(`${service.url}/metrics`)).text();
    return Number(/^sandbox_executions_in_flight (\d+)/m.exec(text)?.[1] ?? 0);
  };

  it('answers 429 CALLER_BUSY with Retry-After to the busy caller while another caller runs', async () => {
    const alice = { authorization: `Bearer ${await hs256('alice')}` };
    const slow = service.post('/execute', { code: 'setTimeout(() => console.log("done"), 4000)' }, alice);
    await expect.poll(inFlight, { timeout: 30_000, interval: 50 }).toBeGreaterThanOrEqual(1);
    const busy = await service.post('/execute', { code: 'console.log(2)' }, alice);
    expect(busy.status, busy.text).toBe(429);
    expect(busy.json).toMatchObject({ success: false, code: 'CALLER_BUSY' });
    expect(Number(busy.headers.get('retry-after'))).toBeGreaterThan(0);
    const bob = await service.post('/execute', { code: 'console.log(3)' }, { authorization: `Bearer ${await hs256('bob')}` });
    expect(bob.status, bob.text).toBe(200);
    const first = await slow;
    expect(first.status, first.text).toBe(200);
    expect(first.json.data.stdout).toBe('done\n');
  });
});

describe('internal details stay in the log', () => {
  const socket = '/nonexistent-engine-dir/docker.sock';
  let service: TestService;
  beforeAll(async () => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${socket}`;
    try {
      service = await startTestService({ JWT_SECRET: TEST_HS_SECRET, EXEC_POOL_SIZE: '0' });
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
  afterAll(async () => {
    await service?.close();
  });

  it('/readyz says the engine is unreachable, not why', async () => {
    const response = await raw(`${service.url}/readyz`, 'GET', {});
    expect(response.status).toBe(503);
    expect(response.json.checks.docker).toBe('unreachable');
    expect(response.text).not.toMatch(/nonexistent|ENOENT|connect/);
  });

  it('a 503 from /execute carries a stable code and no engine error', async () => {
    const response = await service.post('/execute', { code: 'console.log(1)' });
    expect(response.status).toBe(503);
    expect(response.json).toMatchObject({ success: false, code: 'DOCKER_UNAVAILABLE' });
    expect(response.json.details).toBeUndefined();
    expect(response.text).not.toMatch(/nonexistent|ENOENT|connect/);
    expect(service.logLines.map((line) => JSON.stringify(line)).join('\n')).toMatch(/ENOENT|nonexistent/);
  });
});
