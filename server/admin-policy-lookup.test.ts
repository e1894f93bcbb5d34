import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyFileFor } from '../policies/index.ts';
import { adminPolicyLookup } from './admin-policy-lookup.ts';

const VALUE = 'sk_live_policyHeldValue0123456789';
const POLICY = {
  allowedDomains: ['api.stripe.com'],
  secrets: {
    STRIPE_KEY: { hosts: ['api.stripe.com'], value: VALUE },
    GITHUB_TOKEN: { hosts: ['api.github.com'] },
  },
};

describe('adminPolicyLookup', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'admin-policy-'));
    await writeFile(policyFileFor(dir, 'payments'), JSON.stringify(POLICY));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the redacted view: a value the policy file holds never reaches an administrator', async () => {
    const policy = await adminPolicyLookup({ POLICY_API_URL: undefined, POLICY_DIR: dir })('payments');
    expect(JSON.stringify(policy)).not.toContain(VALUE);
    expect(policy).toEqual({
      allowedDomains: ['api.stripe.com'],
      secrets: { STRIPE_KEY: { hosts: ['api.stripe.com'], valueFromPolicy: true }, GITHUB_TOKEN: { hosts: ['api.github.com'] } },
    });
  });

  it('answers null for a subject without a policy, and for a remote policy API', async () => {
    expect(await adminPolicyLookup({ POLICY_API_URL: undefined, POLICY_DIR: dir })('nobody')).toBeNull();
    expect(await adminPolicyLookup({ POLICY_API_URL: 'http://127.0.0.1:1/', POLICY_DIR: dir })('payments')).toBeNull();
  });
});
