/**
 * The proxy's request pipeline with an execution's secrets, over plain HTTP
 * on a loopback upstream: the policy decides first, substitution follows;
 * upgrades and CONNECT targets never carry a placeholder; each decision and
 * log entry names the secrets substituted into it.
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Decision, EgressRequest } from '../policies/index.ts';
import { canonicalHost, SecretBinding } from '../policies/index.ts';
import { startUpstream } from '../test/fixtures/upstream.ts';
import type { Upstream } from '../test/fixtures/upstream.ts';
import { rawExchange, request } from '../test/fixtures/upstream-client.ts';
import { EgressProxy } from './index.ts';
import type { EgressDecision } from './index.ts';

const KEY = 'sk_live_wiring_0123456789';

function decide(req: EgressRequest): Decision {
  const host = canonicalHost(req.host);
  if (host === 'api.example.com' || host === 'other.example.com') return { allowed: true, reason: `Domain ${host} is allowed`, rule: 'allowedDomains[0]', host };
  return { allowed: false, reason: `Domain ${host ?? req.host} is not in allowed list`, rule: 'default', host };
}

let up: Upstream;
let dataDir: string;
let proxy: EgressProxy;
const seen: EgressDecision[] = [];
let n = 0;

const binding = () => SecretBinding.fromSpecs([{ name: 'API_KEY', value: KEY, hosts: ['api.example.com'], in: ['header', 'body'], source: 'request' }]);
const open = (secrets: SecretBinding) => {
  n += 1;
  return proxy.openSession({ executionId: `exec-${n}`, socketPath: path.join(dataDir, 'sandboxes', `s${n}`, 'proxy.sock'), context: undefined, secrets });
};

beforeAll(async () => {
  up = await startUpstream(['api.example.com']);
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-secrets-'));
  proxy = await EgressProxy.create({
    decide,
    dataDir,
    hostMap: new Map([
      ['api.example.com', { address: '127.0.0.1', port: up.httpPort }],
      ['other.example.com', { address: '127.0.0.1', port: up.httpPort }],
    ]),
    onDecision: (d) => seen.push(d),
  });
});

afterAll(async () => {
  await proxy.close();
  await up.close();
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('secrets in the request pipeline', () => {
  it('substitutes a header and a streamed body, rewrites the framing, and names the secret in the decision and the log', async () => {
    seen.length = 0;
    up.reset();
    const secrets = binding();
    const [placeholder] = Object.values(secrets.placeholderEnv());
    const session = await open(secrets);
    const body = JSON.stringify({ token: placeholder });
    const answer = await request(
      { socketPath: session.socketPath },
      { method: 'POST', path: 'http://api.example.com/v1/x', headers: { host: 'api.example.com', authorization: `Bearer ${placeholder}`, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body },
    );
    const log = await session.close();
    expect(answer.statusCode).toBe(200);
    expect(up.requests[0]?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(up.requests[0]?.body).toBe(JSON.stringify({ token: KEY }));
    expect(up.requests[0]?.headers['content-length']).toBeUndefined();
    expect(up.requests[0]?.headers['transfer-encoding']).toBe('chunked');
    // The echo carried the key back in its headers: scrubbed on the way.
    expect(answer.body).not.toContain(KEY);
    expect(answer.body).toContain(placeholder);
    expect(log.entries[0]?.secrets).toEqual(['API_KEY']);
    expect(seen[0]?.secrets).toEqual(['API_KEY']);
  });

  it('lets the policy decide first: a blocked request is blocked for the policy\'s reason, whatever it carries', async () => {
    up.reset();
    const secrets = binding();
    const [placeholder] = Object.values(secrets.placeholderEnv());
    const session = await open(secrets);
    const answer = await request({ socketPath: session.socketPath }, { path: 'http://evil.example/', headers: { host: 'evil.example', authorization: `Bearer ${placeholder}` } });
    const other = await request({ socketPath: session.socketPath }, { path: 'http://other.example.com/', headers: { host: 'other.example.com', authorization: `Bearer ${placeholder}` } });
    await session.close();
    expect([answer.statusCode, JSON.parse(answer.body).reason]).toEqual([403, 'Domain evil.example is not in allowed list']);
    expect([other.statusCode, other.headers['x-egress-blocked'], JSON.parse(other.body).reason]).toEqual([403, 'secret-misplaced', 'Secret API_KEY may not be sent to other.example.com']);
    expect(up.requests).toEqual([]);
  });

  it('refuses a placeholder in an upgrade request: nothing after an upgrade is inspected', async () => {
    up.reset();
    const secrets = binding();
    const [placeholder] = Object.values(secrets.placeholderEnv());
    const session = await open(secrets);
    const socket = net.connect(session.socketPath);
    const responses = await rawExchange(socket, `GET http://api.example.com/ws HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer ${placeholder}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    socket.destroy();
    await session.close();
    expect(responses.map((r) => r.statusCode)).toEqual([403]);
    expect(JSON.parse(responses[0]?.body ?? '{}').reason).toMatch(/^Secret API_KEY may not be sent to api\.example\.com \(a connection upgrade is never substituted\)$/);
    expect(up.requests).toEqual([]);
  });

  it('refuses a CONNECT whose target carries a placeholder', async () => {
    const secrets = binding();
    const [placeholder] = Object.values(secrets.placeholderEnv());
    const session = await open(secrets);
    const socket = net.connect(session.socketPath);
    const host = `${placeholder?.toLowerCase()}.api.example.com`;
    const responses = await rawExchange(socket, `CONNECT ${host}:443 HTTP/1.1\r\nHost: ${host}:443\r\n\r\n`);
    socket.destroy();
    const log = await session.close();
    expect(responses.map((r) => [r.statusCode, r.headers['x-egress-blocked']])).toEqual([[403, 'secret-misplaced']]);
    expect(log.entries[0]?.reason).toMatch(/^Secret API_KEY may not be sent to .* in the host name$/);
  });
});
