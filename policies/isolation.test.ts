import { describe, expect, it } from 'vitest';
import { PolicyApiSchema, PolicySchema, policyFromApi } from './schema.ts';

describe('the isolation requirement', () => {
  it('is carried from the API format into the internal one, and absent when not given', () => {
    const api = PolicyApiSchema.parse({ allowedDomains: [], isolation: 'gvisor' });
    const policy = policyFromApi(api);
    expect(policy.isolation).toBe('gvisor');
    expect(PolicySchema.parse(policy).isolation).toBe('gvisor');
    expect('isolation' in policyFromApi(PolicyApiSchema.parse({ allowedDomains: [] }))).toBe(false);
  });

  it('accepts only a tier stronger than the default', () => {
    expect(PolicyApiSchema.safeParse({ allowedDomains: [], isolation: 'runc' }).success).toBe(false);
    expect(PolicySchema.safeParse({ allowedDomains: [], blockedDomains: [], apiPathRules: {}, allowedPackages: [], allowedBinaries: [], isolation: 'kvm' }).success).toBe(false);
  });
});
