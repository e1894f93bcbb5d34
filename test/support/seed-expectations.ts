/**
 * What the seed's scenarios 2–4 must produce, whichever runtime made the
 * request and whichever way the proxy is deployed: the program's output, the
 * one network-log entry, and what the recording upstream received.
 */
import { expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { lintPolicy, policyHash } from '../../policies/index.ts';
import type { Upstream } from '../fixtures/upstream.ts';

const seedLinted = lintPolicy(JSON.parse(readFileSync(new URL('../../examples/policies/seed.json', import.meta.url), 'utf8')));
if (!seedLinted.ok) throw new Error(`the seed policy does not lint: ${seedLinted.problems.join('; ')}`);
/** The seed policy's identity, computed here independently of the server. */
export const SEED_POLICY_HASH = policyHash(seedLinted.policy);

export const SEED_POLICY_INFO = { source: 'jwt', name: 'User Policy', allowedDomains: 2, allowedPackages: 1, hash: SEED_POLICY_HASH, enforcement: 'enforce' };

const SCENARIOS = {
  /** Test 2: allowed; the upstream receives exactly this request. */
  stripeGet: {
    stdout: '200\n',
    entry: { method: 'GET', url: 'https://api.stripe.com/v1/products', hostname: 'api.stripe.com', statusCode: 200, blocked: false },
    reaches: { scheme: 'https', method: 'GET', path: '/v1/products', host: 'api.stripe.com' },
  },
  /** Test 3: blocked by the okta path rules; nothing reaches the upstream. */
  oktaDelete: {
    stdout: '403\n',
    entry: {
      method: 'DELETE',
      url: 'https://dev-123.okta.com/api/v1/users/123',
      hostname: 'dev-123.okta.com',
      statusCode: 403,
      blocked: true,
      reason: 'Method DELETE not allowed for *.okta.com',
    },
    reaches: null,
  },
  /** Test 4: blocked, the domain is not allowed; nothing reaches the upstream. */
  githubGet: {
    stdout: '403\n',
    entry: {
      method: 'GET',
      url: 'https://api.github.com/users/github',
      hostname: 'api.github.com',
      statusCode: 403,
      blocked: true,
      reason: 'Domain api.github.com is not in allowed list',
    },
    reaches: null,
  },
} as const;

export type SeedScenario = keyof typeof SCENARIOS;

interface ExecutionData {
  stdout: string;
  stderr: string;
  networkLog: Array<Record<string, unknown>>;
}

export function expectSeedScenario(scenario: SeedScenario, data: ExecutionData, upstream: Upstream): void {
  const expected = SCENARIOS[scenario];
  expect(data.stderr).toBe('');
  expect(data.stdout).toBe(expected.stdout);
  expect(data.networkLog).toEqual([expect.objectContaining({ ...expected.entry, durationMs: expect.any(Number) })]);
  if (expected.reaches === null) {
    expect(upstream.requests).toEqual([]);
    return;
  }
  const { host, ...request } = expected.reaches;
  expect(upstream.requests).toHaveLength(1);
  expect(upstream.requests[0]).toMatchObject(request);
  expect(upstream.requests[0]?.headers.host).toBe(host);
}
