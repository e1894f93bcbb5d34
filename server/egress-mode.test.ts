/** Choosing the egress route from the environment, and refusing a half-configured remote one. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

const SECRET = 'k'.repeat(32);

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('EGRESS_MODE', () => {
  it('runs the proxy in-process by default', () => {
    expect(loadConfig({}).EGRESS_MODE).toBe('inprocess');
  });

  it('names both control variables when remote mode has neither', () => {
    expect(problems({ EGRESS_MODE: 'remote' })).toEqual([
      'EGRESS_CONTROL_URL: is required with EGRESS_MODE=remote',
      'EGRESS_CONTROL_SECRET: is required with EGRESS_MODE=remote',
    ]);
  });

  it('refuses a short secret, a bad URL and an unknown mode, all at once', () => {
    const found = problems({ EGRESS_MODE: 'sidecar', EGRESS_CONTROL_URL: 'not a url', EGRESS_CONTROL_SECRET: 'short' });
    expect(found.map((p) => p.split(':')[0])).toEqual(expect.arrayContaining(['EGRESS_MODE', 'EGRESS_CONTROL_URL', 'EGRESS_CONTROL_SECRET']));
    expect(found.find((p) => p.startsWith('EGRESS_CONTROL_SECRET'))).toMatch(/at least 32 characters/);
  });

  it('accepts a complete remote configuration', () => {
    const config = loadConfig({ EGRESS_MODE: 'remote', EGRESS_CONTROL_URL: 'http://egress-proxy:8080', EGRESS_CONTROL_SECRET: SECRET });
    expect(config).toMatchObject({ EGRESS_MODE: 'remote', EGRESS_CONTROL_URL: 'http://egress-proxy:8080', EGRESS_CONTROL_SECRET: SECRET });
  });
});
