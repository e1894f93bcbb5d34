import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { canonicalJson, DEFAULT_POLICY, lintPolicy, PolicyFetcher, policyHash } from './index.ts';
import type { Policy, PolicySource } from './index.ts';

function linted(document: unknown): Policy {
  const result = lintPolicy(document);
  if (!result.ok) throw new Error(result.problems.join('; '));
  return result.policy;
}

const stripe = { allowedDomains: ['api.stripe.com'], apiPathRules: { 'api.stripe.com': [{ path: '/v1/*', allow: true, method: 'GET' }] } };

describe('canonicalJson', () => {
  it('sorts keys at every depth and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe('{"a":{"c":null,"d":[2,1]},"b":1}');
    expect(canonicalJson({ a: undefined, b: 'x' })).toBe('{"b":"x"}');
  });
});

describe('policyHash', () => {
  it('is the same whatever order the source wrote keys in', () => {
    const reordered = { apiPathRules: { 'api.stripe.com': [{ method: 'GET', allow: true, path: '/v1/*' }] }, allowedDomains: ['api.stripe.com'] };
    expect(policyHash(linted(reordered))).toBe(policyHash(linted(stripe)));
    expect(policyHash(linted(stripe))).toMatch(/^[0-9a-f]{64}$/u);
  });

  it('changes when a rule changes', () => {
    const other = { ...stripe, apiPathRules: { 'api.stripe.com': [{ path: '/v1/*', allow: true, method: 'POST' }] } };
    expect(policyHash(linted(other))).not.toBe(policyHash(linted(stripe)));
    expect(policyHash(DEFAULT_POLICY)).not.toBe(policyHash(linted(stripe)));
  });

  it('leaves secret values out: rotating a credential keeps the hash, binding it elsewhere does not', () => {
    const withSecret = (value: string, host: string) => linted({ ...stripe, allowedDomains: ['api.stripe.com', 'files.stripe.com'], secrets: { STRIPE_KEY: { hosts: [host], value } } });
    expect(policyHash(withSecret('sk_live_one', 'api.stripe.com'))).toBe(policyHash(withSecret('sk_live_two', 'api.stripe.com')));
    expect(policyHash(withSecret('sk_live_one', 'api.stripe.com'))).not.toBe(policyHash(withSecret('sk_live_one', 'files.stripe.com')));
    expect(canonicalJson(withSecret('sk_live_one', 'api.stripe.com'))).toContain('sk_live_one');
  });
});

describe('policyInfo identity', () => {
  const fromDocument = (document: unknown): PolicySource => ({ name: 'test', description: 'test', load: () => Promise.resolve(document) });

  it('reports the hash of the effective policy and the version the document names', async () => {
    const fetcher = new PolicyFetcher({ source: fromDocument({ ...stripe, version: 'rev-7' }) });
    const result = await fetcher.fetchPolicy('token');
    expect(result.info.hash).toBe(policyHash(linted(stripe)));
    expect(result.info.version).toBe('rev-7');
  });

  it('has no version when the source sends none, and the default policy has its own hash', async () => {
    const result = await new PolicyFetcher({ source: fromDocument(stripe) }).fetchPolicy('token');
    expect(result.info).not.toHaveProperty('version');
    const none = await new PolicyFetcher({ source: fromDocument(stripe) }).fetchPolicy(undefined);
    expect(none.info.hash).toBe(policyHash(DEFAULT_POLICY));
  });

  it('takes the policy API\'s ETag as the version, unless the document names one', async () => {
    let body: object = stripe;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', etag: 'W/"abc123"' }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/policy`;
      expect((await new PolicyFetcher({ url }).fetchPolicy('token')).info.version).toBe('abc123');
      body = { ...stripe, version: 'from-body' };
      expect((await new PolicyFetcher({ url }).fetchPolicy('token')).info.version).toBe('from-body');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
