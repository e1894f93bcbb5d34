import { describe, expect, it } from 'vitest';
import { ApiError } from './errors.ts';
import { chooseIsolation, isolationFor } from './isolation.ts';

const silent = { info: () => undefined, warn: () => undefined } as unknown as Parameters<typeof chooseIsolation>[2];
const engine = (runtimes: string[] | Error) => ({ ociRuntimes: () => (runtimes instanceof Error ? Promise.reject(runtimes) : Promise.resolve(runtimes)) });

describe('chooseIsolation', () => {
  it('auto picks gVisor when the engine has runsc, runc otherwise', async () => {
    expect(await chooseIsolation('auto', engine(['runc', 'runsc']), silent)).toEqual({ tier: 'gvisor', available: ['gvisor'] });
    expect(await chooseIsolation('auto', engine(['runc']), silent)).toEqual({ tier: 'runc', available: ['runc'] });
    expect(await chooseIsolation('auto', engine(new Error('down')), silent)).toEqual({ tier: 'runc', available: ['runc'] });
  });

  it('runc is runc even where runsc exists; runsc refuses an engine without it', async () => {
    expect(await chooseIsolation('runc', engine(['runc', 'runsc']), silent)).toEqual({ tier: 'runc', available: ['runc'] });
    await expect(chooseIsolation('runsc', engine(['runc']), silent)).rejects.toThrow(/no runsc runtime.*daemon\.json/);
  });
});

describe('isolationFor', () => {
  it('runs a policy without a requirement under the deployment\'s tier', () => {
    expect(isolationFor(undefined, { tier: 'runc', available: ['runc'] })).toBe('runc');
    expect(isolationFor('gvisor', { tier: 'gvisor', available: ['gvisor'] })).toBe('gvisor');
  });

  it('refuses a gVisor requirement on a runc deployment with 503 ISOLATION_UNAVAILABLE', () => {
    const attempt = () => isolationFor('gvisor', { tier: 'runc', available: ['runc'] });
    expect(attempt).toThrow(ApiError);
    try {
      attempt();
    } catch (error) {
      expect(error).toMatchObject({ status: 503, code: 'ISOLATION_UNAVAILABLE' });
    }
  });
});
