/**
 * From token to policy through the HTTP API: the embedded policy service,
 * what `/execute` reports as policyInfo for a user with a policy, without one,
 * and with the policy API down, and the administrator endpoints over the
 * policy cache. Calls to /execute need Docker and the sandbox image.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithDocker, itWithDocker } from './support/docker.ts';
import { closedPort, mintToken, TEST_HS_SECRET } from './support/jwt.ts';
import { startTestService, type TestService } from './support/service.ts';
import { SEED_POLICY_INFO } from './support/seed-expectations.ts';

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';

interface ExecuteData {
  stdout: string;
  policyInfo: { source: string; name: string; reason?: string };
}

const tokenFor = (sub: string) => mintToken(TEST_HS_SECRET, { alg: 'HS256', sub, iss: null, aud: null });
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function request(url: string, init: RequestInit = {}) {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : undefined };
}

describe('the embedded policy service (GET /api/user/policies)', () => {
  let service: TestService;

  beforeAll(async () => {
    // POLICY_DIR left at its default: the shipped examples, where demo-user holds the seed policy.
    service = await startTestService({ JWT_SECRET: TEST_HS_SECRET });
  });

  afterAll(async () => {
    await service?.close();
  });

  const policiesOf = async (token?: string) =>
    request(`${service.url}/api/user/policies`, { headers: token === undefined ? {} : bearer(token) });

  it('answers the seed policy, plus its STRIPE_KEY secret, for demo-user', async () => {
    const seed = JSON.parse(await readFile(new URL('../examples/policies/seed.json', import.meta.url), 'utf8'));
    const response = await policiesOf(await tokenFor('demo-user'));
    expect(response.status).toBe(200);
    expect(response.json).toEqual({ ...seed, secrets: { STRIPE_KEY: { hosts: ['api.stripe.com'], in: ['header'] } } });
    expect(response.headers.get('cache-control')).toBe('no-store');
  });

  it('answers 404 for a user without a policy', async () => {
    const response = await policiesOf(await tokenFor('nobody'));
    expect(response.status).toBe(404);
    expect(response.json).toMatchObject({ success: false, code: 'POLICY_NOT_FOUND' });
  });

  it('keeps subjects inside the folder: "../seed" is not examples/policies/seed.json', async () => {
    const response = await policiesOf(await tokenFor('../seed'));
    expect(response.status).toBe(404);
  });

  it('wants a valid bearer token', async () => {
    const missing = await policiesOf();
    expect(missing.status).toBe(401);
    expect(missing.json.code).toBe('TOKEN_MISSING');
    expect(missing.headers.get('www-authenticate')).toBe('Bearer');
    const expired = await policiesOf(await mintToken(TEST_HS_SECRET, { alg: 'HS256', sub: 'demo-user', expiresIn: -60 }));
    expect(expired.status).toBe(401);
    expect(expired.json.code).toBe('TOKEN_EXPIRED');
  });
});

describeWithDocker('policyInfo on /execute', () => {
  let service: TestService;
  let policyDir: string;

  beforeAll(async () => {
    policyDir = await mkdtemp(join(tmpdir(), 'sandbox-policies-'));
    await writeFile(join(policyDir, 'demo-user.json'), await readFile(new URL('../examples/policies/seed.json', import.meta.url)));
    await writeFile(join(policyDir, 'broken.json'), JSON.stringify({ allowedDomains: ['api.*.com'] }));
    service = await startTestService({ JWT_SECRET: TEST_HS_SECRET, POLICY_DIR: policyDir });
  });

  afterAll(async () => {
    await service?.close();
    await rm(policyDir, { recursive: true, force: true });
  });

  const execute = async (sub: string, code = 'console.log("ok")'): Promise<ExecuteData> => {
    const response = await service.post('/execute', { code }, bearer(await tokenFor(sub)));
    expect(response.status, response.text).toBe(200);
    return response.json.data as ExecuteData;
  };

  it('reports the seed policy as the seed guide shows it', async () => {
    expect((await execute('demo-user')).policyInfo).toEqual(SEED_POLICY_INFO);
  });

  it('falls back to the default policy, with a reason, for a user without a policy', async () => {
    const { policyInfo } = await execute('stranger');
    expect(policyInfo).toMatchObject({ source: 'default', name: 'Default Policy' });
    expect(policyInfo.reason).toBe('No policy for subject "stranger"');
  });

  it('falls back to the default policy when the stored policy is invalid', async () => {
    const { policyInfo } = await execute('broken');
    expect(policyInfo).toMatchObject({ source: 'default', name: 'Default Policy' });
    // The caller learns that, not which field: the details are the operator's, in the log.
    expect(policyInfo.reason).toBe('invalid policy');
    expect(service.logLines).toContainEqual(expect.objectContaining({ reason: expect.stringMatching(/^Policy folder returned an invalid policy: allowedDomains\[0\]/) }));
  });

  it('falls back to the default policy when the policy API is down', async () => {
    const down = await startTestService({ JWT_SECRET: TEST_HS_SECRET, POLICY_API_URL: `http://127.0.0.1:${await closedPort()}/api/user/policies` });
    try {
      const response = await down.post('/execute', { code: '1' }, bearer(await tokenFor('demo-user')));
      expect(response.status, response.text).toBe(200);
      expect(response.json.data.policyInfo).toMatchObject({ source: 'default', name: 'Default Policy' });
      // Stable words for the caller; the address and errno only in the log.
      expect(response.json.data.policyInfo.reason).toBe('policy service unreachable');
      expect(response.text).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
      expect(down.logLines).toContainEqual(expect.objectContaining({ reason: expect.stringMatching(/ECONNREFUSED/) }));
    } finally {
      await down.close();
    }
  });

  it('never lets the caller\'s JWT into the sandbox', async () => {
    const token = await tokenFor('demo-user');
    const response = await service.post(
      '/execute',
      { code: 'console.log(JSON.stringify({ env: process.env, argv: process.argv }))' },
      bearer(token),
    );
    expect(response.status, response.text).toBe(200);
    expect(response.json.data.stdout).not.toContain(token);
    expect(response.json.data.stdout).not.toContain(token.split('.')[2]);
  });
});

describe('administrator endpoints', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ JWT_SECRET: TEST_HS_SECRET, ADMIN_TOKEN });
  });

  afterAll(async () => {
    await service?.close();
  });

  const admin = (method: string, path = '/admin/policy-cache', token = ADMIN_TOKEN, body?: unknown) =>
    request(`${service.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });

  it('are not served without ADMIN_TOKEN', async () => {
    const plain = await startTestService({ JWT_SECRET: TEST_HS_SECRET });
    try {
      expect((await request(`${plain.url}/admin/policy-cache`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).status).toBe(404);
    } finally {
      await plain.close();
    }
  });

  it.each<[string, () => Promise<Record<string, string>>]>([
    ['no credentials', () => Promise.resolve({})],
    ['a wrong token', () => Promise.resolve({ authorization: 'Bearer not-the-admin-token-at-all' })],
    ['a user JWT', async () => bearer(await tokenFor('demo-user'))],
  ])('refuse %s with 401', async (_name, credentials) => {
    const headers = await credentials();
    for (const method of ['GET', 'DELETE']) {
      const response = await request(`${service.url}/admin/policy-cache`, { method, headers });
      expect(response.status).toBe(401);
      expect(response.json).toMatchObject({ success: false, code: 'ADMIN_UNAUTHORIZED' });
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="admin"');
    }
  });

  it('refuse an evict request without a token to evict', async () => {
    const response = await admin('POST', '/admin/policy-cache/evict', ADMIN_TOKEN, { subject: 'demo-user' });
    expect(response.status).toBe(400);
  });

  itWithDocker('show the cache filling, clear one token, then all', async () => {
    const stats = async (): Promise<Record<string, number>> => (await admin('GET')).json.data as Record<string, number>;
    const [first, second] = await Promise.all([tokenFor('demo-user'), tokenFor('other-user')]);
    const before = await stats();
    expect(before).toMatchObject({ size: 0, hits: 0, misses: 0, fetches: 0 });

    expect((await service.post('/execute', { code: '1' }, bearer(first))).status).toBe(200);
    expect(await stats()).toMatchObject({ size: 1, misses: 1, fetches: 1 });
    expect((await service.post('/execute', { code: '1' }, bearer(first))).status).toBe(200);
    expect(await stats()).toMatchObject({ size: 1, hits: 1, fetches: 1 });

    // other-user has no policy: a failed fetch is counted but not cached.
    expect((await service.post('/execute', { code: '1' }, bearer(second))).status).toBe(200);
    expect(await stats()).toMatchObject({ size: 1, fetches: 2, failures: 1 });

    const evicted = await admin('POST', '/admin/policy-cache/evict', ADMIN_TOKEN, { token: first });
    expect(evicted.status).toBe(200);
    expect(evicted.json.data).toMatchObject({ removed: 1, stats: { size: 0 } });

    expect((await service.post('/execute', { code: '1' }, bearer(first))).status).toBe(200);
    expect(await stats()).toMatchObject({ size: 1, fetches: 3 });
    const cleared = await admin('DELETE');
    expect(cleared.status).toBe(200);
    expect(cleared.json.data).toMatchObject({ removed: 1, stats: { size: 0 } });
  });
});
