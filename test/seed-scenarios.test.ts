/**
 * The seed guide's four curl scenarios, end to end: the HTTP API, the real
 * engine and image, the real proxy with TLS interception, and HTTPS
 * upstreams on loopback that record what reaches them.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { describeWithDocker } from './support/docker.ts';
import { expectSeedScenario, SEED_POLICY_INFO } from './support/seed-expectations.ts';
import { startSeedWorld, type SeedWorld } from './support/seed-world.ts';

describeWithDocker('the seed scenarios', () => {
  let world: SeedWorld;

  beforeAll(async () => {
    world = await startSeedWorld();
  });
  afterAll(async () => {
    await world?.close();
  });
  beforeEach(() => {
    world.upstream.reset();
  });

  it('Test 1: without a token the default policy runs the code', async () => {
    const data = await world.run({ code: 'console.log("Hello");' }, { token: null });
    expect(data).toMatchObject({ stdout: 'Hello\n', stderr: '', code: 0, networkLog: [] });
    expect(data.policyInfo).toMatchObject({ source: 'default', name: 'Default Policy' });
  });

  it('Test 2: an allowed HTTPS GET reaches api.stripe.com', async () => {
    const data = await world.run({
      code: 'const https = require("https"); https.get("https://api.stripe.com/v1/products", r => console.log(r.statusCode));',
    });
    expectSeedScenario('stripeGet', data, world.upstream);
    expect(data.code).toBe(0);
    expect(data.policyInfo).toEqual(SEED_POLICY_INFO);
  });

  it('Test 3: DELETE on *.okta.com is blocked with a readable 403', async () => {
    const data = await world.run({
      code: 'const https = require("https"); https.request({ hostname: "dev-123.okta.com", path: "/api/v1/users/123", method: "DELETE" }, r => console.log(r.statusCode)).end();',
    });
    expectSeedScenario('oktaDelete', data, world.upstream);
    expect(data.code).toBe(0);
  });

  it('Test 4: a domain outside allowedDomains is blocked', async () => {
    const data = await world.run({
      code: 'const https = require("https"); https.get("https://api.github.com/users/github", r => console.log(r.statusCode));',
    });
    expectSeedScenario('githubGet', data, world.upstream);
  });

  it('lets the program read the JSON reason of a block', async () => {
    const data = await world.run({
      code: `fetch("https://api.github.com/users/github").then(async (r) => console.log(JSON.stringify([r.status, r.headers.get("x-egress-blocked") !== null, await r.json()])));`,
    });
    const [status, flagged, body] = JSON.parse(data.stdout);
    expect(status).toBe(403);
    expect(flagged).toBe(true);
    expect(body).toEqual({ error: 'blocked by egress policy', reason: 'Domain api.github.com is not in allowed list' });
  });

  it('applies the same rules to fetch() and to plain http', async () => {
    const data = await world.run({
      code: `
        const http = require('node:http');
        const plain = (method, url) => new Promise((resolve) => {
          const req = http.request(url, { method }, (r) => { r.resume(); r.on('end', () => resolve(r.statusCode)); });
          req.on('error', (e) => resolve(e.code));
          req.end();
        });
        (async () => {
          const out = [];
          out.push((await fetch('https://api.stripe.com/v1/charges')).status);
          out.push((await fetch('https://dev-123.okta.com/api/v1/users/1', { method: 'DELETE' })).status);
          out.push((await fetch('https://api.github.com/')).status);
          out.push(await plain('GET', 'http://api.stripe.com/v1/customers'));
          out.push(await plain('DELETE', 'http://dev-123.okta.com/api/v1/users/2'));
          out.push(await plain('GET', 'http://api.github.com/'));
          console.log(out.join(' '));
        })();`,
    });
    expect(data.stderr).toBe('');
    expect(data.stdout).toBe('200 403 403 200 403 403\n');
    expect(data.networkLog.map((e: { method: string; url: string; blocked: boolean }) => [e.method, e.url, e.blocked])).toEqual([
      ['GET', 'https://api.stripe.com/v1/charges', false],
      ['DELETE', 'https://dev-123.okta.com/api/v1/users/1', true],
      ['GET', 'https://api.github.com/', true],
      ['GET', 'http://api.stripe.com/v1/customers', false],
      ['DELETE', 'http://dev-123.okta.com/api/v1/users/2', true],
      ['GET', 'http://api.github.com/', true],
    ]);
    expect(world.upstream.requests.map((r) => `${r.scheme} ${r.method} ${r.path}`)).toEqual([
      'https GET /v1/charges',
      'http GET /v1/customers',
    ]);
  });

  it('gives a program that drops the proxy variables no route to any upstream', async () => {
    const data = await world.run({
      code: `
        for (const k of Object.keys(process.env)) if (/proxy/i.test(k)) delete process.env[k];
        const https = require('node:https');
        const attempt = (url) => new Promise((resolve) => {
          const req = https.get(url, { agent: new https.Agent(), timeout: 3000 }, (r) => resolve('answered ' + r.statusCode));
          req.on('timeout', () => { req.destroy(); resolve('timeout'); });
          req.on('error', (e) => resolve(e.code));
        });
        Promise.all([attempt('https://api.stripe.com/v1/products'), attempt('https://127.0.0.1/')]).then((r) => console.log(JSON.stringify(r)));`,
    });
    const outcomes = JSON.parse(data.stdout) as string[];
    for (const outcome of outcomes) expect(outcome).not.toMatch(/^answered/);
    expect(world.upstream.requests).toEqual([]);
  });
});

describeWithDocker('the network log cap', () => {
  let world: SeedWorld;

  beforeAll(async () => {
    world = await startSeedWorld({ EGRESS_LOG_LIMIT: '3' });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('keeps the first entries and flags the log as capped', async () => {
    const data = await world.run({
      code: `(async () => { for (let i = 0; i < 6; i++) await fetch('https://api.stripe.com/v1/products/' + i).then((r) => r.text()); console.log('done'); })();`,
    });
    expect(data.stdout).toBe('done\n');
    expect(data.networkLog.map((e: { url: string }) => e.url)).toEqual([
      'https://api.stripe.com/v1/products/0',
      'https://api.stripe.com/v1/products/1',
      'https://api.stripe.com/v1/products/2',
    ]);
    expect(data.networkLogCapped).toBe(true);
    expect(world.upstream.requests).toHaveLength(6);
  });
});
