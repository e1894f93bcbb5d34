import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PolicyFetcher, decide, type Clock } from './index.ts';

const seedPolicy = readFileSync(new URL('../examples/policies/seed.json', import.meta.url), 'utf8');

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const serveSeed: Handler = (_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' }).end(seedPolicy);
};

let server: Server;
let url: string;
let handler: Handler = serveSeed;
let seen: { authorization: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ authorization: req.headers.authorization });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/user/policies`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  handler = serveSeed;
  seen = [];
});

/** A clock the test moves by hand, so lifetimes are checked at exact instants, not raced. */
function manualClock(start = Date.now()): Clock & { advance(ms: number): void } {
  let now = start;
  return { now: () => now, advance: (ms) => void (now += ms) };
}

/** An unsigned JWT-shaped token: the fetcher only reads `exp`, it never verifies. */
function tokenWithExp(exp: number, subject = 'user-1'): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none' })}.${part({ sub: subject, exp })}.sig`;
}

describe('PolicyFetcher', () => {
  it('fetches with the bearer token, maps the policy and caches it', async () => {
    const fetcher = new PolicyFetcher({ url });
    const first = await fetcher.fetchPolicy('token-a');
    expect(seen).toEqual([{ authorization: 'Bearer token-a' }]);
    expect(first.source).toBe('jwt');
    expect(first.info).toEqual({ source: 'jwt', name: 'User Policy', allowedDomains: 2, allowedPackages: 1, hash: expect.stringMatching(/^[0-9a-f]{64}$/u), enforcement: 'enforce' });
    expect(first.policy.apiPathRules['*.okta.com']?.[1]).toEqual({ method: 'DELETE', path: '/*', allow: false });
    const decision = decide(first.compiled, { method: 'DELETE', host: 'dev-123.okta.com', port: 443, scheme: 'https', path: '/api/v1/users/123', headers: {} });
    expect(decision.reason).toBe('Method DELETE not allowed for *.okta.com');

    const second = await fetcher.fetchPolicy('token-a');
    expect(second).toBe(first);
    expect(seen).toHaveLength(1);
    expect(fetcher.stats()).toEqual({ size: 1, hits: 1, misses: 1, fetches: 1, failures: 0 });
  });

  it('answers no token with the default policy and no fetch', async () => {
    const fetcher = new PolicyFetcher({ url });
    const result = await fetcher.fetchPolicy(undefined);
    expect(result.info).toEqual({ source: 'default', name: 'Default Policy', hash: expect.stringMatching(/^[0-9a-f]{64}$/u), enforcement: 'enforce' });
    expect(seen).toHaveLength(0);
  });

  it('expires entries after the TTL', async () => {
    const clock = manualClock();
    const fetcher = new PolicyFetcher({ url, ttlMs: 100, clock });
    await fetcher.fetchPolicy('token-ttl');
    clock.advance(99);
    await fetcher.fetchPolicy('token-ttl');
    expect(seen).toHaveLength(1);
    clock.advance(2);
    await fetcher.fetchPolicy('token-ttl');
    expect(seen).toHaveLength(2);
    expect(fetcher.stats()).toMatchObject({ hits: 1, misses: 2, fetches: 2 });
  });

  it('never keeps an entry past the token exp given by the caller', async () => {
    const clock = manualClock();
    const fetcher = new PolicyFetcher({ url, ttlMs: 60_000, clock });
    const expiresAt = (clock.now() + 150) / 1000;
    await fetcher.fetchPolicy('token-exp', { expiresAt });
    clock.advance(149);
    await fetcher.fetchPolicy('token-exp', { expiresAt });
    expect(seen).toHaveLength(1);
    clock.advance(2);
    await fetcher.fetchPolicy('token-exp', { expiresAt: clock.now() / 1000 + 60 });
    expect(seen).toHaveLength(2);
  });

  it('reads exp from the token itself when the caller gives none', async () => {
    const clock = manualClock();
    const fetcher = new PolicyFetcher({ url, ttlMs: 60_000, clock });
    const token = tokenWithExp((clock.now() + 150) / 1000);
    await fetcher.fetchPolicy(token);
    clock.advance(149);
    await fetcher.fetchPolicy(token);
    expect(seen).toHaveLength(1);
    clock.advance(2);
    await fetcher.fetchPolicy(token);
    expect(seen).toHaveLength(2);
  });

  it('does not cache the policy of an already expired token', async () => {
    const fetcher = new PolicyFetcher({ url });
    const token = tokenWithExp(Date.now() / 1000 - 10);
    expect((await fetcher.fetchPolicy(token)).source).toBe('jwt');
    await fetcher.fetchPolicy(token);
    expect(seen).toHaveLength(2);
    expect(fetcher.stats().size).toBe(0);
  });

  it('shares one upstream fetch among 20 concurrent misses for one token', async () => {
    handler = (req, res) => {
      setTimeout(() => serveSeed(req, res), 50);
    };
    const fetcher = new PolicyFetcher({ url });
    const results = await Promise.all(Array.from({ length: 20 }, () => fetcher.fetchPolicy('token-burst')));
    expect(seen).toHaveLength(1);
    expect(new Set(results).size).toBe(1);
    expect(results[0]?.source).toBe('jwt');
    expect(fetcher.stats()).toMatchObject({ fetches: 1, misses: 20, size: 1 });
  });

  it('keys the cache by the SHA-256 of the token, never the token', async () => {
    const fetcher = new PolicyFetcher({ url });
    const token = tokenWithExp(Date.now() / 1000 + 3600);
    await fetcher.fetchPolicy(token);
    const keys = fetcher.keys();
    expect(keys).toEqual([createHash('sha256').update(token).digest('hex')]);
    expect(keys.join()).not.toContain(token);
    expect(keys.join()).not.toContain(token.split('.')[1]);
  });

  it('clears one token or all of them', async () => {
    const fetcher = new PolicyFetcher({ url });
    await fetcher.fetchPolicy('token-1');
    await fetcher.fetchPolicy('token-2');
    await fetcher.fetchPolicy('token-3');
    expect(fetcher.stats().size).toBe(3);
    fetcher.clear('token-2');
    expect(fetcher.stats().size).toBe(2);
    await fetcher.fetchPolicy('token-1');
    await fetcher.fetchPolicy('token-2');
    expect(seen.map((entry) => entry.authorization)).toEqual(['Bearer token-1', 'Bearer token-2', 'Bearer token-3', 'Bearer token-2']);
    fetcher.clear();
    expect(fetcher.stats().size).toBe(0);
    await fetcher.fetchPolicy('token-1');
    expect(seen).toHaveLength(5);
  });

  it('does not keep a policy whose fetch was cleared midway', async () => {
    handler = (req, res) => {
      setTimeout(() => serveSeed(req, res), 50);
    };
    const fetcher = new PolicyFetcher({ url });
    const pending = fetcher.fetchPolicy('token-race');
    fetcher.clear('token-race');
    expect((await pending).source).toBe('jwt');
    expect(fetcher.stats().size).toBe(0);
  });

  describe('falls back to the default policy, uncached, when', () => {
    const failures: { name: string; handler: Handler; code: string; reason: RegExp; shown: string }[] = [
      { name: 'the API answers 500', handler: (_req, res) => res.writeHead(500).end('boom'), code: 'ERR_POLICY_HTTP_STATUS', reason: /^Policy API answered HTTP 500$/, shown: 'policy service answered 500' },
      { name: 'the API answers 404', handler: (_req, res) => res.writeHead(404).end(), code: 'ERR_POLICY_HTTP_STATUS', reason: /^Policy API answered HTTP 404$/, shown: 'policy service answered 404' },
      { name: 'the body is not JSON', handler: (_req, res) => res.writeHead(200).end('{"allowedDomains": ['), code: 'ERR_POLICY_BAD_JSON', reason: /^Policy API returned invalid JSON: /, shown: 'invalid policy' },
      {
        name: 'the policy does not match the schema',
        handler: (_req, res) => res.writeHead(200).end(JSON.stringify({ allowedDomains: ['api.*.com'], extra: 1 })),
        code: 'ERR_POLICY_INVALID',
        reason: /^Policy API returned an invalid policy: allowedDomains\[0\]: "api\.\*\.com".*; \(policy\): Unrecognized key: "extra"$/,
        shown: 'invalid policy',
      },
    ];

    it.each(failures)('$name: the log gets the cause, the caller stable words', async ({ handler: failing, code, reason, shown }) => {
      handler = failing;
      const fetcher = new PolicyFetcher({ url });
      const result = await fetcher.fetchPolicy('token-fail');
      expect(result).toMatchObject({ source: 'default', name: 'Default Policy', errorCode: code });
      expect(result.reason).toMatch(reason);
      expect(result.info).toEqual({ source: 'default', name: 'Default Policy', reason: shown, hash: expect.stringMatching(/^[0-9a-f]{64}$/u), enforcement: 'enforce' });
      expect(result.policy.allowedDomains).toEqual([]);
      await fetcher.fetchPolicy('token-fail');
      expect(fetcher.stats()).toEqual({ size: 0, hits: 0, misses: 2, fetches: 2, failures: 2 });
    });

    it('the API does not answer in time', async () => {
      handler = () => {
        // Never answer: the fetcher's timeout must end the wait.
      };
      const fetcher = new PolicyFetcher({ url, timeoutMs: 200 });
      const started = Date.now();
      const result = await fetcher.fetchPolicy('token-slow');
      expect(Date.now() - started).toBeLessThan(2000);
      expect(result).toMatchObject({ source: 'default', errorCode: 'ERR_POLICY_TIMEOUT', reason: 'Policy API did not answer within 200 ms' });
      expect(result.info.reason).toBe('policy service timed out');
      server.closeAllConnections();
    });

    it('the connection is refused', async () => {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const port = (closed.address() as AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));
      const fetcher = new PolicyFetcher({ url: `http://127.0.0.1:${port}/policies` });
      const result = await fetcher.fetchPolicy('token-refused');
      expect(result).toMatchObject({ source: 'default', errorCode: 'ERR_POLICY_UNREACHABLE' });
      expect(result.reason).toMatch(/^Policy API unreachable: .*ECONNREFUSED/);
      expect(result.info.reason).toBe('policy service unreachable');
      expect(fetcher.stats()).toMatchObject({ failures: 1, size: 0 });
    });
  });
});
