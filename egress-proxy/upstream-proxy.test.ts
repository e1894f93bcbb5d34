/**
 * EGRESS_UPSTREAM_PROXY end to end: the operator's proxy is proxy-chain's
 * own Server on loopback, recording every request that passes through it
 * (its DNS points the test names at the loopback upstream, as a corporate
 * proxy's resolver would). Allowed traffic leaves through it, plain HTTP and
 * HTTPS alike, with the operator's credentials; blocked traffic never
 * reaches it; the decision is ours, made before anything leaves.
 */
import { promises as fs } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Server } from 'proxy-chain';
import type { PrepareRequestFunctionOpts } from 'proxy-chain';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Decision, EgressRequest } from '../policies/index.ts';
import { canonicalHost } from '../policies/index.ts';
import { startUpstream } from '../test/fixtures/upstream.ts';
import type { Upstream } from '../test/fixtures/upstream.ts';
import { connectTunnel, request, tlsOverTunnel } from '../test/fixtures/upstream-client.ts';
import { EgressError, EgressProxy, parseUpstreamProxy } from './index.ts';
import type { EgressDecision, EgressSession } from './index.ts';

const ALLOWED = 'allowed.test';
const BLOCKED = 'blocked.test';
const MAPPED = 'mapped.test';

/** Allows ALLOWED and MAPPED on any port, nothing else. */
function decide(req: EgressRequest): Decision {
  const host = canonicalHost(req.host);
  if (host === ALLOWED || host === MAPPED) return { allowed: true, reason: `Domain ${host} is allowed`, rule: 'allowedDomains[0]', host };
  return { allowed: false, reason: `Domain ${host ?? req.host} is not in allowed list`, rule: 'default', host };
}

interface Passed {
  hostname: string;
  port: number;
  isHttp: boolean;
  url: string;
  username: string;
  password: string;
}

let up: Upstream;
let operator: Server;
let passed: Passed[];
let dataDir: string;
let proxy: EgressProxy;
let session: EgressSession;
const decisions: EgressDecision[] = [];

beforeAll(async () => {
  up = await startUpstream([ALLOWED, MAPPED]);
  passed = [];
  operator = new Server({
    port: 0,
    host: '127.0.0.1',
    prepareRequestFunction: (opts: PrepareRequestFunctionOpts) => {
      passed.push({ hostname: opts.hostname, port: opts.port, isHttp: opts.isHttp, url: opts.request.url ?? '', username: opts.username, password: opts.password });
      return {
        requestAuthentication: opts.username !== 'operator' || opts.password !== 's3cret',
        // The operator's network: every name the test uses lives on loopback.
        dnsLookup: ((_host: string, options: { all?: boolean }, callback: (err: null, address: unknown, family?: number) => void) => {
          if (options.all === true) callback(null, [{ address: '127.0.0.1', family: 4 }]);
          else callback(null, '127.0.0.1', 4);
        }) as never,
      };
    },
  });
  await operator.listen();
  const operatorPort = (operator.server.address() as AddressInfo).port;
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-upstream-proxy-'));
  proxy = await EgressProxy.create({
    decide,
    dataDir,
    upstreamCa: up.caPem,
    upstreamProxy: `http://operator:s3cret@127.0.0.1:${operatorPort}`,
    hostMap: new Map([[`${MAPPED}:${up.httpPort}`, { address: '127.0.0.1', port: up.httpPort }]]),
    onDecision: (d) => decisions.push(d),
  });
  session = await proxy.openSession({ executionId: 'exec-upstream', socketPath: path.join(dataDir, 'sandboxes', 's1', 'proxy.sock'), context: undefined });
});

afterAll(async () => {
  await session?.close();
  await proxy?.close();
  await operator?.close(true);
  await up?.close();
  await fs.rm(dataDir, { recursive: true, force: true });
});

beforeEach(() => {
  up.reset();
  passed.length = 0;
  decisions.length = 0;
});

describe('an operator upstream proxy (EGRESS_UPSTREAM_PROXY)', () => {
  it('carries an allowed plain HTTP request, path and Host exactly as checked, with the operator credentials', async () => {
    // What the upstream proxy then does with the path is its own affair (proxy-chain would resolve a `%2e%2e`):
    // what is ours is that it receives exactly the target that was checked.
    const target = `http://${ALLOWED}:${up.httpPort}/v1/a?q=1`;
    const res = await request({ socketPath: session.socketPath }, { path: target, headers: { host: `${ALLOWED}:${up.httpPort}` } });
    expect(res.statusCode).toBe(200);
    expect(passed).toEqual([expect.objectContaining({ hostname: ALLOWED, port: up.httpPort, isHttp: true, url: target, username: 'operator', password: 's3cret' })]);
    expect(up.requests.map((r) => [r.scheme, r.path, r.headers.host])).toEqual([['http', '/v1/a?q=1', `${ALLOWED}:${up.httpPort}`]]);
    // The operator's credentials are for the operator's proxy: they go no further.
    expect(up.requests[0]?.headers['proxy-authorization']).toBeUndefined();
  });

  it('carries an allowed HTTPS request through a CONNECT tunnel, with our TLS to the destination inside it', async () => {
    const t = await connectTunnel(session.socketPath, `${ALLOWED}:${up.httpsPort}`);
    expect(t.statusCode).toBe(200);
    const tl = await tlsOverTunnel(t.socket, ALLOWED, proxy.caCertPem);
    const res = await request({ stream: tl }, { path: '/v1/secure', headers: { host: `${ALLOWED}:${up.httpsPort}` } });
    tl.destroy();
    expect(res.statusCode).toBe(200);
    expect(passed).toEqual([expect.objectContaining({ hostname: ALLOWED, port: up.httpsPort, isHttp: false, username: 'operator', password: 's3cret' })]);
    expect(up.requests.map((r) => [r.scheme, r.path])).toEqual([['https', '/v1/secure']]);
  });

  it('never lets a blocked request reach the upstream proxy, plain or inside a tunnel', async () => {
    const plain = await request({ socketPath: session.socketPath }, { path: `http://${BLOCKED}/x`, headers: { host: BLOCKED } });
    expect(plain.statusCode).toBe(403);
    expect(plain.headers['x-egress-blocked']).toBe('policy');

    const t = await connectTunnel(session.socketPath, `${BLOCKED}:443`);
    expect(t.statusCode).toBe(200);
    const tl = await tlsOverTunnel(t.socket, BLOCKED, proxy.caCertPem);
    const tunnelled = await request({ stream: tl }, { path: '/x', headers: { host: BLOCKED } });
    tl.destroy();
    expect(tunnelled.statusCode).toBe(403);
    expect(tunnelled.headers['x-egress-blocked']).toBe('policy');

    expect(passed).toEqual([]);
    expect(up.requests).toEqual([]);
  });

  it('still refuses forbidden IP literals itself, before the upstream proxy is asked', async () => {
    const res = await request({ socketPath: session.socketPath }, { path: 'http://169.254.169.254/latest/meta-data', headers: { host: '169.254.169.254' } });
    expect(res.statusCode).toBe(403);
    expect(passed).toEqual([]);
  });

  it('dials hosts the operator mapped directly, not through the upstream proxy', async () => {
    const res = await request({ socketPath: session.socketPath }, { path: `http://${MAPPED}:${up.httpPort}/direct`, headers: { host: `${MAPPED}:${up.httpPort}` } });
    expect(res.statusCode).toBe(200);
    expect(passed).toEqual([]);
    expect(up.requests.map((r) => r.path)).toEqual(['/direct']);
  });

  it('answers 502 with X-Egress-Error when the upstream proxy refuses the tunnel, and records the failure', async () => {
    const bad = await EgressProxy.create({
      decide,
      dataDir,
      upstreamCa: up.caPem,
      upstreamProxy: `http://operator:wrong@127.0.0.1:${(operator.server.address() as AddressInfo).port}`,
      onDecision: (d) => decisions.push(d),
    });
    const s = await bad.openSession({ executionId: 'exec-wrong-credentials', socketPath: path.join(dataDir, 'sandboxes', 's2', 'proxy.sock'), context: undefined });
    try {
      const t = await connectTunnel(s.socketPath, `${ALLOWED}:${up.httpsPort}`);
      const tl = await tlsOverTunnel(t.socket, ALLOWED, bad.caCertPem);
      const res = await request({ stream: tl }, { path: '/v1/x', headers: { host: `${ALLOWED}:${up.httpsPort}` } });
      tl.destroy();
      expect(res.statusCode).toBe(502);
      expect(res.headers['x-egress-error']).toBe('upstream');
      expect(up.requests).toEqual([]);
      const failed = decisions.find((d) => d.executionId === 'exec-wrong-credentials' && d.path === '/v1/x');
      expect(failed).toMatchObject({ allowed: true, statusCode: 502 });
      expect(failed?.reason).toMatch(/upstream proxy .* answered CONNECT .* with 407/u);
    } finally {
      await s.close();
      await bad.close();
    }
  });
});

describe('parseUpstreamProxy', () => {
  it('reads host, port and credentials, and never shows the credentials', () => {
    const p = parseUpstreamProxy('http://us%40er:p%3Ass@proxy.corp.example:3128');
    expect(p).toMatchObject({ host: 'proxy.corp.example', port: 3128, display: 'http://proxy.corp.example:3128' });
    expect(Buffer.from(p.authorization?.replace(/^Basic /u, '') ?? '', 'base64').toString()).toBe('us@er:p:ss');
    expect(parseUpstreamProxy('http://[::1]:8080')).toMatchObject({ host: '::1', port: 8080 });
    expect(parseUpstreamProxy('http://proxy.example')).toMatchObject({ port: 80 });
  });

  it.each([
    ['not a url', /is not a URL/u],
    ['https://proxy.example:3128', /must be an http:\/\/ URL/u],
    ['socks5://proxy.example:1080', /must be an http:\/\/ URL/u],
    ['http://proxy.example:3128/path', /no path/u],
  ])('refuses %s', (value, message) => {
    let error: unknown;
    try {
      parseUpstreamProxy(value);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(EgressError);
    expect(error).toMatchObject({ code: 'ERR_EGRESS_UPSTREAM_PROXY' });
    expect((error as Error).message).toMatch(message);
  });

  it('keeps credentials out of its error messages', () => {
    expect(() => parseUpstreamProxy('https://user:hunter2@proxy.example')).toThrow(/\/\/\*\*\*@/u);
    expect(() => parseUpstreamProxy('https://user:hunter2@proxy.example')).not.toThrow(/hunter2/u);
  });
});
