/**
 * Closing a session cuts what its requests still hold open upstream: a
 * pooled request waiting for its answer (over plain HTTP and inside a TLS
 * tunnel) is cut, though the session keeps no list of them (its agents and
 * its clients' connections both end it), and its log entry says so.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalHost } from '../policies/index.ts';
import { startUpstream } from '../test/fixtures/upstream.ts';
import type { Upstream } from '../test/fixtures/upstream.ts';
import { connectTunnel, tlsOverTunnel } from '../test/fixtures/upstream-client.ts';
import { eventually } from '../test/support/eventually.ts';
import { EgressProxy } from './index.ts';

const HOST = 'api.stripe.com';
const HANG_PATH = '/v1/hang';

let up: Upstream;
let dataDir: string;
let proxy: EgressProxy<null>;
/** Upstream responses left unanswered, and whether their connection has closed. */
const hanging: Array<{ res: http.ServerResponse; closed: boolean }> = [];

beforeAll(async () => {
  up = await startUpstream([HOST], (record, res) => {
    if (record.path !== HANG_PATH) return false;
    const held = { res, closed: false };
    res.on('close', () => (held.closed = true));
    hanging.push(held);
    return true;
  });
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-session-close-'));
  proxy = await EgressProxy.create<null>({
    decide: (req) => ({ allowed: true, reason: 'allowed', rule: 'test', host: canonicalHost(req.host) }),
    dataDir,
    hostMap: up.hostMap([HOST]),
    upstreamCa: up.caPem,
  });
});

afterAll(async () => {
  for (const h of hanging) h.res.destroy();
  await proxy.close();
  await up.close();
  await fs.rm(dataDir, { recursive: true, force: true });
});

let seq = 0;
function open() {
  seq += 1;
  return proxy.openSession({ executionId: `close-${seq}`, socketPath: path.join(dataDir, `s${seq}`, 'proxy.sock'), context: null });
}

describe('closing a session', () => {
  it('cuts a pooled plain-HTTP request still waiting upstream, and logs it unanswered', async () => {
    const s = await open();
    const req = http.request({ socketPath: s.socketPath, path: `http://${HOST}${HANG_PATH}`, headers: { host: HOST } });
    req.on('error', () => undefined);
    req.end();
    const before = hanging.length;
    expect(await eventually(() => hanging.length === before + 1, { timeoutMs: 5_000 })).toBe(true);
    const held = hanging[before];

    const { entries } = await s.close();

    expect(await eventually(() => held?.closed === true, { timeoutMs: 5_000 })).toBe(true);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ method: 'GET', hostname: HOST, statusCode: 0, blocked: false });
    expect(entries[0]?.reason).toMatch(/closed/u);
  });

  it('cuts a pooled HTTPS request inside a tunnel still waiting upstream', async () => {
    const s = await open();
    const tunnel = await connectTunnel(s.socketPath, `${HOST}:443`);
    expect(tunnel.statusCode).toBe(200);
    const secure = await tlsOverTunnel(tunnel.socket, HOST, proxy.caCertPem);
    secure.on('error', () => undefined);
    secure.write(`GET ${HANG_PATH} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    const before = hanging.length;
    expect(await eventually(() => hanging.length === before + 1, { timeoutMs: 5_000 })).toBe(true);
    const held = hanging[before];

    const { entries } = await s.close();

    expect(await eventually(() => held?.closed === true, { timeoutMs: 5_000 })).toBe(true);
    const get = entries.find((e) => e.method === 'GET');
    expect(get).toMatchObject({ hostname: HOST, statusCode: 0, blocked: false });
    expect(get?.reason).toMatch(/closed/u);
  });
});
