/** The standalone proxy's environment: every bad variable named at once, and the shared directory's default. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../service-kit/index.ts';
import { loadEgressServiceConfig } from './service-config.ts';

describe('loadEgressServiceConfig', () => {
  it('names every bad variable', () => {
    let error: unknown;
    try {
      loadEgressServiceConfig({ EGRESS_CONTROL_PORT: '70000', EGRESS_LOG_LIMIT: '0' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.split(':')[0]).sort()).toEqual(['EGRESS_CONTROL_PORT', 'EGRESS_CONTROL_SECRET', 'EGRESS_LOG_LIMIT']);
  });

  it('refuses a secret shorter than 32 characters', () => {
    expect(() => loadEgressServiceConfig({ EGRESS_CONTROL_SECRET: 'x'.repeat(31) })).toThrow(/EGRESS_CONTROL_SECRET: must be at least 32 characters/);
  });

  it('keeps sockets in DATA_DIR/sandboxes unless told otherwise, as the API does', () => {
    const secret = 'x'.repeat(32);
    expect(loadEgressServiceConfig({ EGRESS_CONTROL_SECRET: secret, DATA_DIR: '/srv/data' }).EGRESS_SANDBOXES_DIR).toBe('/srv/data/sandboxes');
    expect(loadEgressServiceConfig({ EGRESS_CONTROL_SECRET: secret, EGRESS_SANDBOXES_DIR: 'rel/boxes' }).EGRESS_SANDBOXES_DIR).toBe(path.resolve('rel/boxes'));
  });

  it('validates EGRESS_UPSTREAM_PROXY as the API does', () => {
    const secret = 'x'.repeat(32);
    expect(loadEgressServiceConfig({ EGRESS_CONTROL_SECRET: secret, EGRESS_UPSTREAM_PROXY: 'http://proxy.corp.example:3128' }).EGRESS_UPSTREAM_PROXY).toBe('http://proxy.corp.example:3128');
    expect(() => loadEgressServiceConfig({ EGRESS_CONTROL_SECRET: secret, EGRESS_UPSTREAM_PROXY: 'proxy.corp.example:3128' })).toThrow(/EGRESS_UPSTREAM_PROXY: /);
  });

  it('reads EGRESS_DENY_CIDRS as a list, naming every bad range', () => {
    const secret = 'x'.repeat(32);
    expect(loadEgressServiceConfig({ EGRESS_CONTROL_SECRET: secret, EGRESS_DENY_CIDRS: ' 10.20.0.0/16, 2001:db8::/32,81.2.69.160 ' }).EGRESS_DENY_CIDRS).toEqual(['10.20.0.0/16', '2001:db8::/32', '81.2.69.160']);
    expect(loadEgressServiceConfig({ EGRESS_CONTROL_SECRET: secret, EGRESS_DENY_CIDRS: '' }).EGRESS_DENY_CIDRS).toBeUndefined();
    let error: unknown;
    try {
      loadEgressServiceConfig({ EGRESS_CONTROL_SECRET: secret, EGRESS_DENY_CIDRS: '10.0.0.0/33,corp.example' });
    } catch (caught) {
      error = caught;
    }
    expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^EGRESS_DENY_CIDRS: .*10\.0\.0\.0\/33.*prefix length/u), expect.stringMatching(/^EGRESS_DENY_CIDRS: .*corp\.example.*not an IP address/u)]);
  });
});
