/**
 * Identity through the HTTP API: which tokens the service accepts, how it
 * refuses the rest (status, RFC 6750 challenge, stable code), that keys named
 * inside a token are never fetched, and development/production key handling.
 * Refusals need no container (identity comes first); the accepted /execute
 * calls need Docker and the sandbox image.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageTags } from '../images/index.ts';
import { ConfigError, loadConfig } from '../server/config.ts';
import { DEV_KEY_FILE, loadIdentity } from '../server/identity/index.ts';
import { createLogger } from '../server/logger.ts';
import { startService, type RunningService } from '../server/service.ts';
import { itWithDocker } from './support/docker.ts';
import {
  closedPort,
  handmadeToken,
  mintToken,
  rsaKeyPair,
  startRecordingServer,
  TEST_AUDIENCE,
  TEST_HS_SECRET,
  TEST_ISSUER,
  type RecordingServer,
  type TestKeyPair,
} from './support/jwt.ts';
import { startTestService, type TestService } from './support/service.ts';

const CHALLENGE = /^Bearer error="invalid_token", error_description="[\x20-\x7e]+"$/;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function getJson(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: text ? JSON.parse(text) : undefined };
}

function expectRefusal(response: { status: number; headers: Headers; json: unknown }, code: string, challenge: RegExp = CHALLENGE) {
  expect(response.status, JSON.stringify(response.json)).toBe(401);
  expect(response.headers.get('www-authenticate')).toMatch(challenge);
  expect(response.json).toMatchObject({ success: false, code, error: expect.any(String) });
}

describe('tokens verified with an RS256 public key (PEM)', () => {
  let service: TestService;
  let keys: TestKeyPair;
  let attacker: TestKeyPair;
  let keyHost: RecordingServer;

  beforeAll(async () => {
    keys = await rsaKeyPair();
    attacker = await rsaKeyPair();
    keyHost = await startRecordingServer({ keys: [{ ...attacker.publicJwk, kid: 'attacker', alg: 'RS256' }] });
    service = await startTestService({ JWT_PUBLIC_KEY: keys.publicPem, JWT_ISSUER: TEST_ISSUER, JWT_AUDIENCE: TEST_AUDIENCE });
  });

  afterAll(async () => {
    await service?.close();
    await keyHost?.close();
  });

  const execute = (headers: Record<string, string>) => service.post('/execute', { code: 'console.log(1)' }, headers);

  it.each<[string, () => Promise<string>, string]>([
    ['an expired token', () => mintToken(keys.privateKey, { expiresIn: -60 }), 'TOKEN_EXPIRED'],
    ['a token whose nbf is an hour ahead', () => mintToken(keys.privateKey, { notBefore: 3600 }), 'TOKEN_NOT_YET_VALID'],
    ['a token signed by another key', () => mintToken(attacker.privateKey), 'TOKEN_BAD_SIGNATURE'],
    [
      'a token whose payload was changed after signing',
      async () => {
        const [header, , signature] = (await mintToken(keys.privateKey)).split('.');
        const forged = Buffer.from(JSON.stringify({ sub: 'root', iss: TEST_ISSUER, aud: TEST_AUDIENCE })).toString('base64url');
        return `${header}.${forged}.${signature}`;
      },
      'TOKEN_BAD_SIGNATURE',
    ],
    ['alg "none"', () => Promise.resolve(handmadeToken({ alg: 'none', typ: 'JWT' }, { sub: 'alice', iss: TEST_ISSUER, aud: TEST_AUDIENCE })), 'TOKEN_ALG_NOT_ALLOWED'],
    // Algorithm confusion: HS256 keyed with the public key's PEM, which anyone can read.
    ['HS256 signed with the RSA public key as secret', () => mintToken(keys.publicPem, { alg: 'HS256' }), 'TOKEN_ALG_NOT_ALLOWED'],
    ['a wrong issuer', () => mintToken(keys.privateKey, { iss: 'https://evil.test' }), 'TOKEN_CLAIM_INVALID'],
    ['a wrong audience', () => mintToken(keys.privateKey, { aud: 'another-service' }), 'TOKEN_CLAIM_INVALID'],
    ['no sub claim', () => mintToken(keys.privateKey, { sub: null }), 'TOKEN_CLAIM_INVALID'],
    ['no exp claim', () => mintToken(keys.privateKey, { expiresIn: null }), 'TOKEN_CLAIM_INVALID'],
    ['a token issued to live 30 days (exp - iat)', () => mintToken(keys.privateKey, { expiresIn: 30 * 86_400 }), 'TOKEN_LIFETIME_TOO_LONG'],
    ['a token without iat whose exp is 2 days away', () => mintToken(keys.privateKey, { issuedAt: null, expiresIn: 2 * 86_400 }), 'TOKEN_LIFETIME_TOO_LONG'],
    ['a token whose iat is set ahead to stretch its life', () => mintToken(keys.privateKey, { issuedAt: 2 * 86_400, expiresIn: 2 * 86_400 + 60 }), 'TOKEN_LIFETIME_TOO_LONG'],
    ['garbage', () => Promise.resolve('not-a-jwt'), 'TOKEN_MALFORMED'],
    ['three dots of garbage', () => Promise.resolve('a.b.c'), 'TOKEN_MALFORMED'],
    ['a 10 KB token', () => Promise.resolve('a'.repeat(10 * 1024)), 'TOKEN_TOO_LARGE'],
  ])('refuses %s with 401 and its code', async (_name, make, code) => {
    expectRefusal(await execute(bearer(await make())), code);
  });

  it('names the missing exp claim in the body and the challenge', async () => {
    const response = await execute(bearer(await mintToken(keys.privateKey, { expiresIn: null })));
    expectRefusal(response, 'TOKEN_CLAIM_INVALID');
    expect(response.json.error).toMatch(/"exp" claim is missing/);
    expect(response.headers.get('www-authenticate')).toMatch(/'exp' claim is missing/);
  });

  it.each(['Basic YWxpY2U6cGFzcw==', 'Bearer', 'Bearer two tokens', 'Token abc.def.ghi'])(
    'refuses the malformed Authorization header %j with 401',
    async (authorization) => {
      expectRefusal(await execute({ authorization }), 'AUTH_HEADER_MALFORMED', /^Bearer error="invalid_request", error_description="[^"]+"$/);
    },
  );

  it('checks the token before reading the body', async () => {
    const response = await service.post('/execute', '{"code": ', bearer(await mintToken(keys.privateKey, { expiresIn: -60 })));
    expectRefusal(response, 'TOKEN_EXPIRED');
  });

  it('never fetches a key URL or uses a key embedded in the token (jku, x5u, jwk)', async () => {
    const tokens = await Promise.all([
      mintToken(attacker.privateKey, { header: { kid: 'attacker', jku: `${keyHost.url}/jwks.json` } }),
      mintToken(attacker.privateKey, { header: { x5u: `${keyHost.url}/cert.pem` } }),
      mintToken(attacker.privateKey, { header: { jwk: { ...attacker.publicJwk } } }),
    ]);
    for (const token of tokens) expectRefusal(await execute(bearer(token)), 'TOKEN_BAD_SIGNATURE');
    // A window for a stray fetch the refusal did not wait for: nothing to wait on, since nothing may come.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(keyHost.requests).toEqual([]);
  });

  it('stays up when sent a 200 KB token, and answers the next request', async () => {
    // Node refuses headers over 16 KB itself (431) before the app sees them; what matters is that nothing breaks.
    const status = await new Promise<number | string>((resolve) => {
      const request = http.request(`${service.url}/execute`, { method: 'POST', headers: { authorization: `Bearer ${'a'.repeat(200 * 1024)}` } });
      request.on('response', (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      request.end('{}');
    });
    expect([431, 'ECONNRESET', 'EPIPE']).toContain(status);
    expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
    expectRefusal(await execute(bearer('a'.repeat(10 * 1024))), 'TOKEN_TOO_LARGE');
  });

  it('accepts a valid token at the policy API without a container', async () => {
    const response = await getJson(`${service.url}/api/user/policies`, bearer(await mintToken(keys.privateKey, { sub: 'nobody-with-a-policy' })));
    // 404: verified, and simply no policy file for this subject.
    expect(response.status).toBe(404);
    expect(response.json.code).toBe('POLICY_NOT_FOUND');
  });

  itWithDocker('runs code for a valid RS256 token and never logs the token', async () => {
    const token = await mintToken(keys.privateKey);
    const response = await execute(bearer(token));
    expect(response.status, response.text).toBe(200);
    expect(response.json.data.stdout).toBe('1\n');
    expect(JSON.stringify(service.logLines)).not.toContain(token.split('.')[2]);
  });
});

describe('tokens verified with an HS256 secret', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ JWT_SECRET: TEST_HS_SECRET });
  });

  afterAll(async () => {
    await service?.close();
  });

  it('refuses an RS256 token and HS512 (outside the default allowlist)', async () => {
    const { privateKey } = await rsaKeyPair();
    expectRefusal(await service.post('/execute', { code: '1' }, bearer(await mintToken(privateKey))), 'TOKEN_ALG_NOT_ALLOWED');
    expectRefusal(await service.post('/execute', { code: '1' }, bearer(await mintToken(TEST_HS_SECRET, { alg: 'HS512' }))), 'TOKEN_ALG_NOT_ALLOWED');
  });

  it('refuses a token signed with another secret', async () => {
    const token = await mintToken(`${TEST_HS_SECRET}-but-different`, { alg: 'HS256' });
    expectRefusal(await service.post('/execute', { code: '1' }, bearer(token)), 'TOKEN_BAD_SIGNATURE');
  });

  itWithDocker('runs code for a valid HS256 token', async () => {
    const response = await service.post('/execute', { code: 'console.log(2)' }, bearer(await mintToken(TEST_HS_SECRET, { alg: 'HS256' })));
    expect(response.status, response.text).toBe(200);
    expect(response.json.data.stdout).toBe('2\n');
  });
});

describe('tokens verified against a JWKS URL', () => {
  let service: TestService;
  let keys: TestKeyPair;
  let jwksHost: RecordingServer;
  let elsewhere: RecordingServer;

  beforeAll(async () => {
    keys = await rsaKeyPair();
    jwksHost = await startRecordingServer({ keys: [{ ...keys.publicJwk, kid: 'k1', alg: 'RS256', use: 'sig' }] });
    elsewhere = await startRecordingServer({ keys: [] });
    service = await startTestService({ JWT_JWKS_URL: `${jwksHost.url}/jwks.json` });
  });

  afterAll(async () => {
    await service?.close();
    await jwksHost?.close();
    await elsewhere?.close();
  });

  it('accepts a token whose kid is in the configured set, and fetches no other URL', async () => {
    const token = await mintToken(keys.privateKey, { header: { kid: 'k1', jku: `${elsewhere.url}/jwks.json` } });
    const response = await getJson(`${service.url}/api/user/policies`, bearer(token));
    expect(response.status).toBe(404);
    expect(jwksHost.requests).toContain('/jwks.json');
    expect(elsewhere.requests).toEqual([]);
  });

  it('refuses a kid the set does not have', async () => {
    const response = await service.post('/execute', { code: '1' }, bearer(await mintToken(keys.privateKey, { header: { kid: 'unknown' } })));
    expectRefusal(response, 'TOKEN_KEY_UNKNOWN');
  });

  it('answers 503, not 401, when the JWKS endpoint is down', async () => {
    const down = await startTestService({ JWT_JWKS_URL: `http://127.0.0.1:${await closedPort()}/jwks.json` });
    try {
      const response = await down.post('/execute', { code: '1' }, bearer(await mintToken(keys.privateKey, { header: { kid: 'k1' } })));
      expect(response.status).toBe(503);
      expect(response.json.code).toBe('KEYS_UNAVAILABLE');
      expect(response.headers.get('retry-after')).toBeTruthy();
    } finally {
      await down.close();
    }
  });
});

describe('key configuration', () => {
  it('refuses to start in production without a key, naming the variables', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sandbox-prod-'));
    try {
      const config = loadConfig({ NODE_ENV: 'production', PORT: '0', DATA_DIR: dataDir });
      const error: unknown = await startService({ config, images: await imageTags(), logger: createLogger('silent') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/JWT_JWKS_URL.*JWT_PUBLIC_KEY.*JWT_SECRET/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it.each<[string, Record<string, string>, RegExp[]]>([
    ['without JWT_AUDIENCE', { JWT_SECRET: TEST_HS_SECRET }, [/^JWT_AUDIENCE: required with NODE_ENV=production/]],
    ['with a JWKS URL but no JWT_ISSUER', { JWT_JWKS_URL: 'https://idp.test/jwks.json', JWT_AUDIENCE: TEST_AUDIENCE }, [/^JWT_ISSUER: required with NODE_ENV=production and JWT_JWKS_URL/]],
    ['without any key, audience or issuer', {}, [/JWT_JWKS_URL.*JWT_PUBLIC_KEY.*JWT_SECRET/, /^JWT_AUDIENCE: required/]],
  ])('refuses to start in production %s, naming the variable', async (_name, env, messages) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sandbox-prod-'));
    try {
      const config = loadConfig({ NODE_ENV: 'production', PORT: '0', DATA_DIR: dataDir, ...env });
      const error: unknown = await startService({ config, images: await imageTags(), logger: createLogger('silent') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      for (const message of messages) expect((error as ConfigError).problems.some((p) => message.test(p)), (error as Error).message).toBe(true);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('starts in production with a key, an audience and (for a JWKS URL) an issuer', async () => {
    const keys = await rsaKeyPair();
    const identity = await loadIdentity(loadConfig({ NODE_ENV: 'production', JWT_PUBLIC_KEY: keys.publicPem, JWT_AUDIENCE: TEST_AUDIENCE }));
    expect((await identity.verifier.verify(await mintToken(keys.privateKey))).subject).toBe('alice');
  });

  it('takes JWT_MAX_TOKEN_AGE as a duration and refuses tokens living longer', async () => {
    const keys = await rsaKeyPair();
    const identity = await loadIdentity(loadConfig({ JWT_PUBLIC_KEY: keys.publicPem, JWT_MAX_TOKEN_AGE: '10m' }));
    expect((await identity.verifier.verify(await mintToken(keys.privateKey, { expiresIn: 600 }))).subject).toBe('alice');
    await expect(identity.verifier.verify(await mintToken(keys.privateKey, { expiresIn: 3600 }))).rejects.toMatchObject({ code: 'TOKEN_LIFETIME_TOO_LONG' });
    expect(() => loadConfig({ JWT_MAX_TOKEN_AGE: 'forever' })).toThrow(/JWT_MAX_TOKEN_AGE: must be a positive duration/);
  });

  it.each<[string, (keys: TestKeyPair) => Record<string, string>, RegExp]>([
    ['an HMAC algorithm with a public key', (keys) => ({ JWT_PUBLIC_KEY: keys.publicPem, JWT_ALGORITHMS: 'RS256,HS256' }), /JWT_ALGORITHMS: HS256 .*algorithm confusion/],
    ['"none" as an algorithm', (keys) => ({ JWT_PUBLIC_KEY: keys.publicPem, JWT_ALGORITHMS: 'none' }), /JWT_ALGORITHMS: none/],
    ['two key sources at once', (keys) => ({ JWT_PUBLIC_KEY: keys.publicPem, JWT_SECRET: TEST_HS_SECRET }), /JWT_PUBLIC_KEY, JWT_SECRET: set only one/],
    [
      'a private key where the public one belongs',
      (keys) => ({ JWT_PUBLIC_KEY: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }),
      /JWT_PUBLIC_KEY: this is a private key/,
    ],
  ])('refuses %s', async (_name, settingsFor, message) => {
    const error: unknown = await loadIdentity(loadConfig(settingsFor(await rsaKeyPair()))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.join('\n')).toMatch(message);
  });

  it('refuses an HS256 secret shorter than 32 bytes', async () => {
    await expect(loadIdentity(loadConfig({ JWT_SECRET: 'short' }))).rejects.toThrow(/JWT_SECRET: must be at least 32 bytes/);
  });

  it('reads a JWK public key from a file', async () => {
    const keys = await rsaKeyPair();
    const dir = await mkdtemp(join(tmpdir(), 'sandbox-jwk-'));
    try {
      const path = join(dir, 'key.jwk.json');
      await writeFile(path, JSON.stringify({ ...keys.publicJwk, alg: 'RS256' }));
      const identity = await loadIdentity(loadConfig({ JWT_PUBLIC_KEY: path }));
      expect(identity.verifier.source.algorithms).toEqual(['RS256']);
      const verified = await identity.verifier.verify(await mintToken(keys.privateKey, { sub: 'from-file' }));
      expect(verified.subject).toBe('from-file');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('development mode', () => {
  let dataDir: string;
  const banners: string[] = [];
  const services: RunningService[] = [];

  const start = async () => {
    const config = loadConfig({ NODE_ENV: 'development', PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir });
    const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
    const service = await startService({
      config,
      images: await imageTags(),
      logger: createLogger('info', sink),
      announce: (text) => banners.push(text),
    });
    services.push(service);
    return service;
  };
  const printedToken = (banner: string) => /Authorization: Bearer ([\w.-]+)'/.exec(banner)?.[1] ?? '';
  const printedCurl = (banner: string) => banner.split('\n').find((line) => line.trim().startsWith('curl '))?.trim() ?? '';

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'sandbox-dev-'));
  });

  afterAll(async () => {
    for (const service of services) await service.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('creates an owner-only ES256 key, serves its JWKS and accepts the printed demo token', async () => {
    const service = await start();
    const keyFile = join(dataDir, 'dev-keys', DEV_KEY_FILE);
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(keyFile, 'utf8')).toMatch(/BEGIN PRIVATE KEY/);

    const jwks = await getJson(`${service.url}/.well-known/jwks.json`);
    expect(jwks.status).toBe(200);
    expect(jwks.json.keys).toHaveLength(1);
    expect(jwks.json.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwks.json.keys[0].d).toBeUndefined();

    const banner = banners.at(-1) ?? '';
    const token = printedToken(banner);
    expect(token.split('.')).toHaveLength(3);
    // demo-user is the seed policy's user in the shipped examples.
    const policy = await getJson(`${service.url}/api/user/policies`, bearer(token));
    expect(policy.status).toBe(200);
    expect(policy.json.allowedDomains).toEqual(['api.stripe.com', '*.okta.com']);
    // The same token is left for scripts, readable by the owner only.
    const tokenFile = join(dataDir, 'demo-token');
    expect((await readFile(tokenFile, 'utf8')).trim()).toBe(token);
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
  });

  itWithDocker('runs the printed curl as printed', async () => {
    const curl = printedCurl(banners.at(-1) ?? '');
    expect(curl).toContain('/execute');
    const { stdout } = await promisify(execFile)('sh', ['-c', curl], { timeout: 60_000 });
    const response = JSON.parse(stdout);
    expect(response.success).toBe(true);
    expect(response.data.stdout).toBe('Hello from the sandbox\n');
    expect(response.data.policyInfo).toEqual({ source: 'jwt', name: 'User Policy', allowedDomains: 2, allowedPackages: 1, hash: expect.stringMatching(/^[0-9a-f]{64}$/u), enforcement: 'enforce' });
  });

  it('reuses the key across restarts, so earlier demo tokens stay valid', async () => {
    const before = printedToken(banners.at(-1) ?? '');
    const firstKid = (await getJson(`${services[0].url}/.well-known/jwks.json`)).json.keys[0].kid;
    await services.shift()!.close();
    const restarted = await start();
    expect((await getJson(`${restarted.url}/.well-known/jwks.json`)).json.keys[0].kid).toBe(firstKid);
    expect((await getJson(`${restarted.url}/api/user/policies`, bearer(before))).status).toBe(200);
  });

  it('serves no JWKS when a real key is configured', async () => {
    const service = await startTestService({ JWT_SECRET: TEST_HS_SECRET });
    try {
      expect((await getJson(`${service.url}/.well-known/jwks.json`)).status).toBe(404);
    } finally {
      await service.close();
    }
  });
});
