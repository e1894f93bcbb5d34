/**
 * What docker-compose.yml must keep true, beyond being valid compose
 * (scripts/check-compose.sh asks the compose tool for that): the proxy never
 * gets the Docker socket, the sandboxes directory is the same host path on
 * every side, both services' environments pass their own config schemas,
 * and they agree on the control channel.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadEgressServiceConfig } from '../../egress-proxy/service-config.ts';
import { loadConfig } from '../../server/config.ts';

const SECRET = 's'.repeat(32);

interface Service {
  command: string[];
  environment: Record<string, string>;
  volumes: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  networks: string[];
  cap_drop?: string[];
  read_only?: boolean;
}

/** Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?message}` in one string value, enough for this file. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::([-?])([^}]*))?\}/g, (_m, name: string, op: string | undefined, arg: string | undefined) => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (op === '?') throw new Error(`${name}: ${arg}`);
    return op === '-' ? (arg ?? '') : '';
  });
}

/** Like compose: parse the YAML first, then interpolate every string value (keys are never interpolated). */
function interpolateValues(value: unknown, env: Record<string, string>): unknown {
  if (typeof value === 'string') return interpolate(value, env);
  if (Array.isArray(value)) return value.map((item) => interpolateValues(item, env));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolateValues(item, env)]));
  }
  return value;
}

async function composeFile(env: Record<string, string>): Promise<{ services: Record<string, Service>; networks: Record<string, { internal?: boolean }> }> {
  const raw = await readFile(new URL('../../docker-compose.yml', import.meta.url), 'utf8');
  return interpolateValues(parse(raw, { merge: true }), env) as any;
}

const hostPathOf = (volume: string) => volume.split(':')[0];
const containerPathOf = (volume: string) => volume.split(':')[1];

describe('docker-compose.yml', () => {
  it('refuses to render without the control secret', async () => {
    await expect(composeFile({})).rejects.toThrow(/EGRESS_CONTROL_SECRET/);
  });

  it('gives the Docker socket to the api and never to the proxy', async () => {
    const { services } = await composeFile({ EGRESS_CONTROL_SECRET: SECRET });
    const proxy = services['egress-proxy'];
    const api = services.api;
    expect(api.volumes).toContain('/var/run/docker.sock:/var/run/docker.sock');
    expect(proxy.volumes.filter((v) => v.includes('docker.sock'))).toEqual([]);
    expect(Object.keys(proxy.environment)).not.toContain('DOCKER_HOST');
    expect(proxy.cap_drop).toEqual(['ALL']);
    expect(proxy.read_only).toBe(true);
  });

  it.each<Record<string, string>>([{}, { SANDBOX_EGRESS_DIR: '/srv/sandboxes-here' }])('mounts the sandboxes directory at its host path on both sides (%o)', async (extra) => {
    const { services } = await composeFile({ EGRESS_CONTROL_SECRET: SECRET, ...extra });
    const api = services.api;
    const proxy = services['egress-proxy'];
    const apiConfig = loadConfig(api.environment);
    const proxyConfig = loadEgressServiceConfig(proxy.environment);
    // The engine resolves bind mounts on the host: the API's sandboxes directory must be a host path, unchanged.
    const apiMount = api.volumes.find((v) => containerPathOf(v) === apiConfig.DATA_DIR);
    expect(apiMount && hostPathOf(apiMount)).toBe(apiConfig.DATA_DIR);
    const proxyMount = proxy.volumes.find((v) => containerPathOf(v) === proxyConfig.EGRESS_SANDBOXES_DIR);
    expect(proxyMount && hostPathOf(proxyMount)).toBe(proxyConfig.EGRESS_SANDBOXES_DIR);
    expect(proxyConfig.EGRESS_SANDBOXES_DIR).toBe(`${apiConfig.DATA_DIR}/sandboxes`);
    // The CA key stays in the proxy's own volume, out of the shared directory.
    expect(proxyConfig.DATA_DIR.startsWith(apiConfig.DATA_DIR)).toBe(false);
  });

  it('runs the api against the proxy service over the control channel, with one secret', async () => {
    const { services, networks } = await composeFile({ EGRESS_CONTROL_SECRET: SECRET });
    const api = services.api;
    const proxy = services['egress-proxy'];
    const apiConfig = loadConfig(api.environment);
    const proxyConfig = loadEgressServiceConfig(proxy.environment);
    expect(apiConfig.EGRESS_MODE).toBe('remote');
    expect(apiConfig.EGRESS_CONTROL_SECRET).toBe(SECRET);
    expect(proxyConfig.EGRESS_CONTROL_SECRET).toBe(SECRET);
    const url = new URL(apiConfig.EGRESS_CONTROL_URL ?? '');
    expect(url.hostname).toBe('egress-proxy');
    expect(Number(url.port)).toBe(proxyConfig.EGRESS_CONTROL_PORT);
    expect(proxyConfig.EGRESS_CONTROL_HOST).toBe('0.0.0.0');
    expect(api.depends_on).toEqual({ 'egress-proxy': { condition: 'service_healthy' } });
    expect(api.command.join(' ')).toMatch(/server\/main\.ts$/);
    expect(proxy.command.join(' ')).toMatch(/egress-proxy\/main\.ts$/);

    // The shared network has no route out; only the proxy is also on one that does.
    const shared = api.networks.filter((n) => proxy.networks.includes(n));
    expect(shared).toEqual(['control']);
    expect(networks.control?.internal).toBe(true);
  });

  it('gives both services a healthcheck on their own health endpoint', async () => {
    const { services } = await composeFile({ EGRESS_CONTROL_SECRET: SECRET });
    const port = (name: string) => {
      const env = services[name].environment;
      return name === 'api' ? loadConfig(env).PORT : loadEgressServiceConfig(env).EGRESS_CONTROL_PORT;
    };
    expect(services.api.healthcheck?.test.join(' ')).toContain(`127.0.0.1:${port('api')}/readyz`);
    expect(services['egress-proxy'].healthcheck?.test.join(' ')).toContain(`127.0.0.1:${port('egress-proxy')}/healthz`);
  });
});
