import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(3000);
    expect(config.HOST).toBe('127.0.0.1');
    expect(config.POLICY_CACHE_TTL_MS).toBe(60_000);
    expect(config.EXEC_OUTPUT_LIMIT_BYTES).toBe(1024 * 1024);
  });

  it('names every bad variable at once', () => {
    let error: unknown;
    try {
      loadConfig({ PORT: 'abc', EXEC_MEMORY_MB: '-1', POLICY_API_URL: 'not a url' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/^PORT:/m);
    expect(problems).toMatch(/^EXEC_MEMORY_MB:/m);
    expect(problems).toMatch(/^POLICY_API_URL:/m);
  });

  it('refuses a default timeout above the maximum', () => {
    expect(() => loadConfig({ EXEC_TIMEOUT_MS: '5000', EXEC_MAX_TIMEOUT_MS: '1000' })).toThrow(/EXEC_TIMEOUT_MS/);
  });

  it('keeps uploads within half the sandbox /tmp and under the agents\' header cap', () => {
    const config = loadConfig({});
    expect(config.EXEC_FILES_MAX_BYTES).toBeLessThanOrEqual((config.EXEC_TMP_MB * 1024 * 1024) / 2);
    expect(() => loadConfig({ EXEC_TMP_MB: '16', EXEC_FILES_MAX_BYTES: String(9 * 1024 * 1024) })).toThrow(/EXEC_FILES_MAX_BYTES: must not exceed half of EXEC_TMP_MB/);
    expect(() => loadConfig({ EXEC_TMP_MB: '1024', EXEC_FILES_MAX_BYTES: String(25 * 1024 * 1024) })).toThrow(/EXEC_FILES_MAX_BYTES/);
    expect(() => loadConfig({ EXEC_OUTPUT_FILES_MAX_COUNT: '-1' })).toThrow(/EXEC_OUTPUT_FILES_MAX_COUNT/);
  });

  it('validates EGRESS_UPSTREAM_PROXY for the in-process proxy, naming it and hiding its credentials', () => {
    expect(loadConfig({ EGRESS_UPSTREAM_PROXY: 'http://user:pw@proxy.corp.example:3128' }).EGRESS_UPSTREAM_PROXY).toBe('http://user:pw@proxy.corp.example:3128');
    expect(loadConfig({}).EGRESS_UPSTREAM_PROXY).toBeUndefined();
    let error: unknown;
    try {
      loadConfig({ EGRESS_UPSTREAM_PROXY: 'https://user:hunter2@proxy.corp.example' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/^EGRESS_UPSTREAM_PROXY: .*must be an http:\/\/ URL/m);
    expect(problems).not.toMatch(/hunter2/);
  });

  it('reads TRUST_PROXY: off by default, hops, or proxy addresses; never "trust everyone"', () => {
    expect(loadConfig({}).TRUST_PROXY).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '1' }).TRUST_PROXY).toBe(1);
    expect(loadConfig({ TRUST_PROXY: 'loopback, 10.0.0.0/8, ::1' }).TRUST_PROXY).toEqual(['loopback', '10.0.0.0/8', '::1']);
    for (const bad of ['true', '10.0.0.0/33', 'proxy.example']) {
      expect(() => loadConfig({ TRUST_PROXY: bad }), bad).toThrow(/TRUST_PROXY: must be off, a hop count/);
    }
  });

  it('reads JWT_MAX_TOKEN_AGE as a duration and derives the per-caller cap', () => {
    expect(loadConfig({}).JWT_MAX_TOKEN_AGE).toBe(86_400);
    expect(loadConfig({ JWT_MAX_TOKEN_AGE: '90m' }).JWT_MAX_TOKEN_AGE).toBe(5_400);
    expect(loadConfig({ JWT_MAX_TOKEN_AGE: '600' }).JWT_MAX_TOKEN_AGE).toBe(600);
    expect(loadConfig({ EXEC_MAX_CONCURRENT: '8' }).EXEC_MAX_CONCURRENT_PER_CALLER).toBe(4);
    expect(loadConfig({ EXEC_MAX_CONCURRENT: '1' }).EXEC_MAX_CONCURRENT_PER_CALLER).toBe(1);
  });
});
