/** One env loader and one ConfigError for every service: each bad variable named, all at once. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError as ServerConfigError, loadConfig } from '../server/config.ts';
import { loadEgressServiceConfig } from '../egress-proxy/service-config.ts';
import { ConfigError, loadEnv, logLevel, optionalText, port, positiveInt } from './index.ts';

const Schema = z.object({ PORT: port(3000), LIMIT: positiveInt(5), NAME: optionalText, LOG_LEVEL: logLevel });

const problemsOf = (load: () => unknown): string[] => {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected a ConfigError');
};

describe('loadEnv', () => {
  it('applies the shared helpers: defaults, coercion, blank text as unset', () => {
    expect(loadEnv(Schema, { NAME: '  ' })).toEqual({ PORT: 3000, LIMIT: 5, NAME: undefined, LOG_LEVEL: 'info' });
    expect(loadEnv(Schema, { PORT: '0', LIMIT: '7', NAME: ' x ', LOG_LEVEL: 'debug' })).toEqual({ PORT: 0, LIMIT: 7, NAME: 'x', LOG_LEVEL: 'debug' });
  });

  it('names every bad variable in one ConfigError', () => {
    const problems = problemsOf(() => loadEnv(Schema, { PORT: '70000', LIMIT: '0', LOG_LEVEL: 'loud' }));
    expect(problems.map((p) => p.split(':')[0])).toEqual(['PORT', 'LIMIT', 'LOG_LEVEL']);
  });

  it('is the one ConfigError of the API server and of the proxy service', () => {
    expect(ServerConfigError).toBe(ConfigError);
    expect(problemsOf(() => loadConfig({ PORT: 'abc' }))).toEqual([expect.stringMatching(/^PORT: /)]);
    expect(problemsOf(() => loadEgressServiceConfig({ EGRESS_CONTROL_PORT: 'abc' })).map((p) => p.split(':')[0]).sort()).toEqual([
      'EGRESS_CONTROL_PORT',
      'EGRESS_CONTROL_SECRET',
    ]);
  });
});
