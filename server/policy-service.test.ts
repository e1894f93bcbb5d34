/**
 * The embedded policy path: POLICY_DIR is read directly, with the subject the
 * server verified, through the same PolicySource the HTTP fetcher implements.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DirectoryPolicySource, PolicyFetcher, type HttpRequest } from '../policies/index.ts';
import { loadConfig } from './config.ts';
import { loadIdentity, resolveCaller } from './identity/index.ts';
import { createPolicyCache, policySourceFor } from './policy-service.ts';

const SECRET = 'a-test-secret-of-at-least-32-bytes!!';
const sign = (sub: string) =>
  new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'embedded-policies-'));
  await writeFile(join(dir, 'demo-user.json'), await readFile(new URL('../examples/policies/seed.json', import.meta.url)));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the embedded policy source', () => {
  it('makes no HTTP request: the injected HTTP client is never called', async () => {
    const http = vi.fn(request);
    const config = loadConfig({ JWT_SECRET: SECRET, POLICY_DIR: dir });
    const identity = await loadIdentity(config);
    const policies = createPolicyCache(config, { request: http });
    const caller = await resolveCaller(await identity.authenticate(`Bearer ${await sign('demo-user')}`), policies);
    expect(caller.policyInfo).toEqual({ source: 'jwt', name: 'User Policy', allowedDomains: 2, allowedPackages: 1, hash: expect.stringMatching(/^[0-9a-f]{64}$/u), enforcement: 'enforce' });
    expect(http).not.toHaveBeenCalled();
  });

  it('hands the same injected client to a remote policy API, which is called', async () => {
    const http = vi.fn<HttpRequest>(() => Promise.reject(new Error('no policy API here')));
    const config = loadConfig({ JWT_SECRET: SECRET, POLICY_API_URL: 'http://policy.invalid/api/user/policies' });
    const policies = createPolicyCache(config, { request: http });
    const result = await policies.fetchPolicy(await sign('demo-user'));
    expect(result).toMatchObject({ source: 'default', errorCode: 'ERR_POLICY_UNREACHABLE' });
    expect(http).toHaveBeenCalledTimes(1);
  });

  it('verifies the token once per request and reads (so parses and validates) a policy file once per load', async () => {
    const config = loadConfig({ JWT_SECRET: SECRET, POLICY_DIR: dir, POLICY_CACHE_TTL_MS: '600000' });
    const identity = await loadIdentity(config);
    const verify = vi.spyOn(identity.verifier, 'verify');
    const reads: string[] = [];
    const folder = new DirectoryPolicySource({ directory: dir, readFile: (path) => (reads.push(path), readFile(path, 'utf8')) });
    const policies = new PolicyFetcher({ source: folder, ttlMs: config.POLICY_CACHE_TTL_MS });
    const token = await sign('demo-user');
    for (let i = 0; i < 3; i++) {
      const caller = await resolveCaller(await identity.authenticate(`Bearer ${token}`), policies);
      expect(caller).toMatchObject({ subject: 'demo-user', policyInfo: { source: 'jwt' } });
    }
    expect(verify).toHaveBeenCalledTimes(3);
    expect(reads).toEqual([join(dir, 'demo-user.json')]);
    expect(policies.stats()).toMatchObject({ fetches: 1, hits: 2 });
  });

  it('names a missing file, and reads POLICY_DIR only when no POLICY_API_URL is set', async () => {
    const config = loadConfig({ POLICY_DIR: dir });
    expect(policySourceFor(config)).toBeInstanceOf(DirectoryPolicySource);
    const result = await createPolicyCache(config).fetchPolicy(await sign('stranger'), { subject: 'stranger' });
    expect(result).toMatchObject({ source: 'default', errorCode: 'ERR_POLICY_NOT_FOUND', reason: 'No policy for subject "stranger"' });
    expect(policySourceFor(loadConfig({ POLICY_API_URL: 'http://policy.test/p' })).name).toBe('Policy API');
  });
});
