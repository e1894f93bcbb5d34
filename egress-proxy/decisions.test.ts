/**
 * Decisions as events: every finished request reaches the proxy's observers
 * once, from the same place its network-log entry is completed, carrying
 * what an audit store would keep. A throwing observer changes nothing.
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Decision, EgressRequest } from '../policies/index.ts';
import { canonicalHost } from '../policies/index.ts';
import { startUpstream } from '../test/fixtures/upstream.ts';
import type { Upstream } from '../test/fixtures/upstream.ts';
import { rawExchange, request } from '../test/fixtures/upstream-client.ts';
import { decisionReasonLabel, EgressProxy } from './index.ts';
import type { EgressDecision } from './index.ts';

function decide(req: EgressRequest): Decision {
  const host = canonicalHost(req.host);
  if (host === 'api.example.com' || host === 'down.example.com') return { allowed: true, reason: `Domain ${host} is allowed`, rule: 'allowedDomains[0]', host };
  return { allowed: false, reason: `Domain ${host ?? req.host} is not in allowed list`, rule: 'default', host };
}

let up: Upstream;
let dataDir: string;
let proxy: EgressProxy;
const seen: EgressDecision[] = [];
const observerErrors: unknown[] = [];

beforeAll(async () => {
  up = await startUpstream(['api.example.com']);
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-decisions-'));
  proxy = await EgressProxy.create({
    decide,
    dataDir,
    // down.example.com is mapped to a port nothing listens on: allowed, then the upstream fails.
    hostMap: new Map([
      ['api.example.com', { address: '127.0.0.1', port: up.httpPort }],
      ['down.example.com', { address: '127.0.0.1', port: 1 }],
    ]),
    logger: { info: () => undefined, warn: () => undefined, error: (obj) => observerErrors.push(obj) },
    onDecision: [
      () => {
        throw new Error('observer exploded');
      },
      (d) => seen.push(d),
    ],
  });
});

afterAll(async () => {
  await proxy.close();
  await up.close();
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('decision observers', () => {
  it('get one decision per request, as the network log records it, with what an audit needs', async () => {
    const session = await proxy.openSession({ executionId: 'exec-observed', socketPath: path.join(dataDir, 'sandboxes', 's1', 'proxy.sock'), context: undefined });
    const ok = await request({ socketPath: session.socketPath }, { method: 'POST', path: 'http://api.example.com/v1/items?page=2', headers: { host: 'api.example.com' }, body: 'x' });
    const no = await request({ socketPath: session.socketPath }, { path: 'http://evil.example/steal', headers: { host: 'evil.example' } });
    const down = await request({ socketPath: session.socketPath }, { path: 'http://down.example.com/v1/x', headers: { host: 'down.example.com' } });
    const log = await session.close();
    expect([ok.statusCode, no.statusCode, down.statusCode]).toEqual([200, 403, 502]);

    expect(seen).toEqual([
      {
        executionId: 'exec-observed',
        method: 'POST',
        host: 'api.example.com',
        port: 80,
        path: '/v1/items?page=2',
        url: 'http://api.example.com/v1/items?page=2',
        allowed: true,
        wouldBlock: false,
        reason: 'Domain api.example.com is allowed',
        rule: 'allowedDomains[0]',
        statusCode: 200,
        durationMs: expect.any(Number) as number,
      },
      expect.objectContaining({ method: 'GET', host: 'evil.example', port: 80, path: '/steal', allowed: false, rule: 'default', statusCode: 403, reason: 'Domain evil.example is not in allowed list' }),
      expect.objectContaining({ host: 'down.example.com', path: '/v1/x', allowed: true, rule: 'allowedDomains[0]', statusCode: 502, reason: expect.stringMatching(/ECONNREFUSED/u) as string }),
    ]);
    // The same decisions, in the same order, as the execution's network log.
    expect(log.entries.map((e) => [e.url, e.statusCode, e.blocked])).toEqual(seen.map((d) => [d.url, d.statusCode, !d.allowed]));
    // The throwing observer was logged, once per decision, and stopped nothing.
    expect(observerErrors).toHaveLength(3);
  });

  it('answer an upgrade whose upstream fails like any other request: 502, X-Egress-Error, one decision', async () => {
    seen.length = 0;
    const session = await proxy.openSession({ executionId: 'exec-upgrade', socketPath: path.join(dataDir, 'sandboxes', 's2', 'proxy.sock'), context: undefined });
    const socket = net.connect(session.socketPath);
    const responses = await rawExchange(socket, 'GET http://down.example.com/ws HTTP/1.1\r\nHost: down.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    socket.destroy();
    await session.close();
    expect(responses.map((r) => [r.statusCode, r.headers['x-egress-error']])).toEqual([[502, 'upstream']]);
    expect(JSON.parse(responses[0]?.body ?? '{}')).toMatchObject({ error: 'upstream unavailable' });
    expect(seen).toEqual([expect.objectContaining({ executionId: 'exec-upgrade', path: '/ws', allowed: true, statusCode: 502 })]);
  });

  it('label reasons by policy section or proxy check, never by host or path', () => {
    expect(decisionReasonLabel('apiPathRules["api.stripe.com"][0]')).toBe('apiPathRules');
    expect(decisionReasonLabel('proxy:destination-address')).toBe('proxy:destination-address');
    expect(decisionReasonLabel(null)).toBe('unknown');
  });
});
