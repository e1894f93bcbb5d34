import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explainPolicy, policyPlaygroundRoutes } from './admin-playground.ts';
import { errorHandler } from './errors.ts';

const SEED = JSON.parse(readFileSync(new URL('../examples/policies/seed.json', import.meta.url), 'utf8')) as unknown;

describe('explainPolicy', () => {
  it.each([
    ['DELETE', 'https://dev-123.okta.com/api/v1/users/123', false, 'Method DELETE not allowed for *.okta.com', 'apiPathRules["*.okta.com"][1]'],
    ['GET', 'https://dev-123.okta.com/api/v1/users/123', true, expect.any(String), 'apiPathRules["*.okta.com"][0]'],
    ['GET', 'https://api.github.com/users/github', false, 'Domain api.github.com is not in allowed list', expect.any(String)],
    ['get', 'https://api.stripe.com/v1/products?limit=3', true, expect.any(String), 'allowedDomains[0]'],
  ])('%s %s → allowed %s, %s', (method, url, allowed, reason, rule) => {
    const { lint, decision } = explainPolicy(SEED, { method, url });
    expect(lint.ok).toBe(true);
    expect(decision).toMatchObject({ allowed, reason, rule });
  });

  it('lints without deciding when no request is given, and names every problem of a bad policy', () => {
    expect(explainPolicy(SEED)).toMatchObject({ lint: { ok: true, problems: [], warnings: [expect.stringContaining('*.okta.com')] }, decision: null });
    const bad = explainPolicy({ allowedDomains: ['api.*.com'], apiPathRules: { 'x.com': [{ path: '/a', allow: 'yes' }] } }, { method: 'GET', url: 'https://x.com/' });
    expect(bad.decision).toBeNull();
    expect(bad.lint.ok).toBe(false);
    expect(bad.lint.problems.join('\n')).toMatch(/allowedDomains\[0\]/u);
    expect(bad.lint.problems.join('\n')).toMatch(/apiPathRules\["x\.com"\]\[0\]\.allow/u);
  });
});

describe('policyPlaygroundRoutes', () => {
  let server: Server;
  let url: string;

  beforeAll(async () => {
    const app = express();
    app.use(policyPlaygroundRoutes((subject) => Promise.resolve(subject === 'seed-user' ? SEED : null)));
    app.use(errorHandler);
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.close();
  });

  const explain = (body: unknown) =>
    fetch(`${url}/admin/policies/explain`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('answers the decision for a method and URL', async () => {
    const response = await explain({ policy: SEED, method: 'DELETE', url: 'https://dev-123.okta.com/api/v1/users/123' });
    expect(response.status).toBe(200);
    expect(((await response.json()) as any).data.decision).toEqual({
      allowed: false,
      reason: 'Method DELETE not allowed for *.okta.com',
      rule: 'apiPathRules["*.okta.com"][1]',
      host: 'dev-123.okta.com',
      path: '/api/v1/users/123',
    });
  });

  it('refuses a URL it cannot read, a method without a URL and unknown fields, naming the field', async () => {
    const cases: Array<[unknown, string]> = [
      [{ policy: SEED, method: 'GET', url: 'ftp://x.com/' }, 'url'],
      [{ policy: SEED, method: 'GET' }, 'url'],
      [{ policy: SEED, extra: 1 }, 'extra'],
    ];
    for (const [body, field] of cases) {
      const response = await explain(body);
      expect(response.status).toBe(400);
      expect(((await response.json()) as any).details).toEqual([expect.objectContaining({ field })]);
    }
  });

  it('returns a subject\'s current policy, and 404 for one it cannot find', async () => {
    const found = await fetch(`${url}/admin/policies/seed-user`);
    expect(((await found.json()) as any).data).toEqual({ subject: 'seed-user', policy: SEED });
    const missing = await fetch(`${url}/admin/policies/nobody`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).code).toBe('POLICY_NOT_FOUND');
  });
});

describe('the playground in the OpenAPI document', () => {
  it('documents both endpoints, the explain body and answer from their schemas', async () => {
    const { openApiDocument } = await import('./openapi.ts');
    const document = openApiDocument('0.0.0-test') as any;
    expect(document.paths['/admin/policies/explain'].post.security).toEqual([{ admin: [] }]);
    expect(document.paths['/admin/policies/{subject}'].get.operationId).toBe('adminGetPolicy');
    expect(Object.keys(document.components.schemas.PolicyExplainRequest.properties)).toEqual(['policy', 'method', 'url']);
    expect(Object.keys(document.components.schemas.PolicyExplanation.properties)).toEqual(['lint', 'decision']);
  });
});
