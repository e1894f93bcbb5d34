/**
 * The standalone proxy service counts its own decisions: in remote mode the
 * API never sees them, so the service's control port serves /metrics. Driven
 * as the API drives it: a session opened over the control channel, requests
 * through the session's socket, then a scrape.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policyFromApi } from '../policies/index.ts';
import { startUpstream } from '../test/fixtures/upstream.ts';
import type { Upstream } from '../test/fixtures/upstream.ts';
import { request } from '../test/fixtures/upstream-client.ts';
import { ControlClient, DECISIONS_METRIC } from './index.ts';
import { loadEgressServiceConfig } from './service-config.ts';
import { startEgressService } from './service.ts';
import type { RunningEgressService } from './service.ts';

const SECRET = 'service-metrics-test-secret-0123456789';
const SILENT = { info: () => undefined, warn: () => undefined, error: () => undefined };

let up: Upstream;
let tmp: string;
let service: RunningEgressService;

beforeAll(async () => {
  up = await startUpstream(['api.example.com']);
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-service-'));
  const config = loadEgressServiceConfig({
    EGRESS_CONTROL_PORT: '0',
    EGRESS_CONTROL_SECRET: SECRET,
    DATA_DIR: path.join(tmp, 'data'),
    EGRESS_HOST_MAP: `api.example.com:80=127.0.0.1:${up.httpPort}`,
  });
  service = await startEgressService(config, SILENT);
});

afterAll(async () => {
  await service?.close();
  await up?.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

/** The value of one sample in Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('the egress proxy service', () => {
  it('serves /metrics counting decisions by result and reason, without the control secret', async () => {
    const client = new ControlClient({ url: service.url, secret: SECRET });
    const sandbox = path.join(tmp, 'data', 'sandboxes', 'exec-metrics');
    await fs.mkdir(sandbox, { recursive: true });
    const socketPath = path.join(sandbox, 'proxy.sock');
    const session = await client.openSession({ executionId: 'exec-metrics', socketPath, policy: policyFromApi({ allowedDomains: ['api.example.com'] }) });
    const allowed = await request({ socketPath }, { path: 'http://api.example.com/v1/items', headers: { host: 'api.example.com' } });
    const blocked = await request({ socketPath }, { path: 'http://evil.example/steal', headers: { host: 'evil.example' } });
    const refused = await request({ socketPath }, { path: 'http://api.example.com/v1/items', headers: { host: 'evil.example' } });
    await session.close();
    expect([allowed.statusCode, blocked.statusCode, refused.statusCode]).toEqual([200, 403, 403]);

    const res = await fetch(`${service.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/u);
    const text = await res.text();
    expect(sample(text, DECISIONS_METRIC, '{result="allowed",reason="allowedDomains"}')).toBe(1);
    expect(sample(text, DECISIONS_METRIC, '{result="blocked",reason="allowedDomains"}')).toBe(1);
    expect(sample(text, DECISIONS_METRIC, '{result="blocked",reason="proxy:host-mismatch"}')).toBe(1);
  });
});
