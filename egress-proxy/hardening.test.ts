/**
 * The proxy with the real policy matcher against recording upstreams on
 * loopback, tried the way a hostile program would: protocol upgrades other
 * than WebSocket, other spellings of a denied path, method overrides the
 * policy's headers do not name, the proxy host's own addresses, and CONNECT
 * floods. For every forbidden case the upstream records nothing and the
 * refusal is a logged decision with a reason.
 */
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CompiledPolicy, PolicyApi } from '../policies/index.ts';
import { compilePolicy, decide, policyFromApi } from '../policies/index.ts';
import { startUpstream } from '../test/fixtures/upstream.ts';
import type { Upstream } from '../test/fixtures/upstream.ts';
import { connectTunnel, parseResponses, rawExchange, tlsOverTunnel } from '../test/fixtures/upstream-client.ts';
import { EgressProxy } from './index.ts';
import type { EgressDecision, EgressSession } from './index.ts';
import { webSocketAccept } from './http-checks.ts';

const HOSTS = ['api.example.com', 'files.example.com', 'api.github.com', 'ws.example.com', 'plain.example.com'];
const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

const POLICY: PolicyApi = {
  allowedDomains: [...HOSTS, 'odd-ws.example.com', '203.0.114.7', '198.51.99.5'],
  webSocketDomains: ['ws.example.com', 'odd-ws.example.com'],
  apiPathRules: {
    'api.example.com': [
      { path: '/**', allow: true },
      { path: '/admin', allow: false },
      { path: '/users/@me', allow: false },
      { path: '/v1/projects/*:delete', allow: false },
      { path: '/odata/$metadata', allow: false },
      { path: '/public/admin/**', allow: false },
      { path: '/private/**', allow: false, method: 'GET' },
      { path: '/items/**', allow: false, method: 'DELETE' },
    ],
    'files.example.com': [{ path: '/public/**', allow: true }],
    'api.github.com': [
      { path: '/**', allow: true, method: 'GET' },
      { path: '/user/**', allow: false },
    ],
  },
};

let up: Upstream;
/** Answers every upgrade with a 101 that does not prove it read the key, and records what it received. */
let oddUpstream: net.Server;
const oddReceived: string[] = [];
let dataDir: string;
let proxy: EgressProxy<CompiledPolicy>;
const decisions: EgressDecision[] = [];
const sessions: EgressSession<CompiledPolicy>[] = [];
let seq = 0;

async function open(): Promise<EgressSession<CompiledPolicy>> {
  seq += 1;
  const s = await proxy.openSession({ executionId: `hard-${seq}`, socketPath: path.join(dataDir, 'sandboxes', `s${seq}`, 'proxy.sock'), context: compilePolicy(policyFromApi(POLICY)) });
  sessions.push(s);
  return s;
}

/** One raw request on the session socket (absolute form), its responses. */
async function plain(s: EgressSession<CompiledPolicy>, raw: string) {
  const socket = net.connect(s.socketPath);
  const responses = await rawExchange(socket, raw);
  socket.destroy();
  return responses;
}

/** CONNECT + TLS to `host:443`, then raw bytes on the tunnel. */
async function tunnelled(s: EgressSession<CompiledPolicy>, host: string, raw: string) {
  const t = await connectTunnel(s.socketPath, `${host}:443`);
  expect(t.statusCode).toBe(200);
  const tl = await tlsOverTunnel(t.socket, host, proxy.caCertPem);
  const responses = await rawExchange(tl, raw);
  tl.destroy();
  return responses;
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never happened: ${what}`);
}

const reasonOf = (body: string | undefined): unknown => (JSON.parse(body ?? '{}') as { reason?: unknown }).reason;

beforeAll(async () => {
  up = await startUpstream(HOSTS);
  oddUpstream = net.createServer((socket) => {
    socket.on('data', (d: Buffer) => {
      oddReceived.push(d.toString('latin1'));
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBvbmU=\r\n\r\n');
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => oddUpstream.listen(0, '127.0.0.1', resolve));
  const oddPort = (oddUpstream.address() as net.AddressInfo).port;
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-hardening-'));
  proxy = await EgressProxy.create<CompiledPolicy>({
    decide: (request, session) => decide(session.context, request),
    dataDir,
    hostMap: new Map([...up.hostMap(HOSTS), ['odd-ws.example.com:80', { address: '127.0.0.1', port: oddPort }]]),
    upstreamCa: up.caPem,
    hostAddresses: ['203.0.114.7'],
    denyCidrs: ['198.51.99.0/24'],
    onDecision: (d) => decisions.push(d),
  });
});

afterAll(async () => {
  await proxy.close();
  await up.close();
  await new Promise<void>((resolve) => oddUpstream.close(() => resolve()));
  await fs.rm(dataDir, { recursive: true, force: true });
});

beforeEach(() => {
  up.reset();
  oddReceived.length = 0;
  decisions.length = 0;
});

afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close()));
});

describe('upgrades: only a checked WebSocket handshake, only to opted-in hosts', () => {
  const h2c = (host: string, target: string) =>
    `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n`;

  it('refuses the h2c smuggling attempt on the proxy socket: no 101, nothing upstream, logged with a reason', async () => {
    const s = await open();
    const [res, ...rest] = await plain(s, h2c('api.example.com', 'http://api.example.com/public/x'));
    expect(rest).toEqual([]);
    expect(res?.statusCode).toBe(403);
    expect(res?.headers['x-egress-blocked']).toBe('unsupported-upgrade');
    expect(reasonOf(res?.body)).toMatch(/Upgrade to "h2c" is not allowed/u);
    expect(up.requests).toEqual([]);
    expect(decisions).toEqual([expect.objectContaining({ method: 'GET', path: '/public/x', allowed: false, statusCode: 403, rule: 'proxy:unsupported-upgrade' })]);
  });

  it('refuses the same inside an intercepted HTTPS tunnel', async () => {
    const s = await open();
    const [res] = await tunnelled(s, 'api.example.com', h2c('api.example.com', '/public/x'));
    expect(res?.statusCode).toBe(403);
    expect(reasonOf(res?.body)).toMatch(/h2c/u);
    expect(up.requests).toEqual([]);
    expect(s.networkLog().entries).toEqual([expect.objectContaining({ method: 'GET', url: 'https://api.example.com/public/x', blocked: true, reason: expect.stringMatching(/h2c/u) as string })]);
  });

  it.each([
    ['two tokens', 'Upgrade: websocket, h2c\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ' + WS_KEY, /websocket, h2c/u],
    ['no key', 'Upgrade: websocket\r\nSec-WebSocket-Version: 13', /Sec-WebSocket-Key/u],
    ['version 8', `Upgrade: websocket\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: ${WS_KEY}`, /Version: 13/u],
  ])('refuses a WebSocket handshake with %s', async (_case, headers, reason) => {
    const s = await open();
    const [res] = await plain(s, `GET http://ws.example.com/chat HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\n${headers}\r\n\r\n`);
    expect(res?.statusCode).toBe(403);
    expect(reasonOf(res?.body)).toMatch(reason);
    expect(up.requests).toEqual([]);
  });

  it('never forwards HTTP2-Settings, even on a request that is not an upgrade', async () => {
    const s = await open();
    const [res] = await plain(s, 'GET http://api.example.com/public/x HTTP/1.1\r\nHost: api.example.com\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
    expect(res?.statusCode).toBe(200);
    expect(up.requests.map((r) => [r.path, r.headers['http2-settings'], r.headers.upgrade])).toEqual([['/public/x', undefined, undefined]]);
  });

  it('refuses a proper WebSocket to a host the policy did not opt in', async () => {
    const s = await open();
    const [res] = await tunnelled(s, 'api.example.com', `GET /socket HTTP/1.1\r\nHost: api.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${WS_KEY}\r\n\r\n`);
    expect(res?.statusCode).toBe(403);
    expect(reasonOf(res?.body)).toBe('WebSocket upgrades to api.example.com are not allowed: the host is not in webSocketDomains');
    expect(up.requests).toEqual([]);
  });

  it('relays a proper WebSocket to an opted-in host, inside a tunnel', async () => {
    const s = await open();
    const t = await connectTunnel(s.socketPath, 'ws.example.com:443');
    const tl = await tlsOverTunnel(t.socket, 'ws.example.com', proxy.caCertPem);
    const [res] = await rawExchange(tl, `GET /chat HTTP/1.1\r\nHost: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${WS_KEY}\r\n\r\n`);
    expect(res?.statusCode).toBe(101);
    expect(res?.headers['sec-websocket-accept']).toBe(webSocketAccept(WS_KEY));
    const echoed = await new Promise<string>((resolve) => {
      tl.once('data', (d: Buffer) => resolve(d.toString()));
      tl.write('ping');
    });
    expect(echoed).toBe('ping');
    tl.destroy();
    expect(up.requests.map((r) => [r.method, r.path, r.headers.upgrade, r.headers['sec-websocket-key']])).toEqual([['GET', '/chat', 'websocket', WS_KEY]]);
  });

  it('closes both sides of a 101 without the matching Sec-WebSocket-Accept, and logs it', async () => {
    const s = await open();
    const socket = net.connect(s.socketPath);
    const responses = await rawExchange(socket, `GET http://odd-ws.example.com/chat HTTP/1.1\r\nHost: odd-ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${WS_KEY}\r\n\r\n`);
    expect(responses.map((r) => r.statusCode)).toEqual([502]);
    await eventually(() => socket.destroyed || socket.readableEnded, 'the client connection closed');
    expect(oddReceived.join('')).toMatch(/^GET \/chat HTTP\/1\.1\r\n/u);
    expect(decisions).toEqual([expect.objectContaining({ path: '/chat', statusCode: 502, reason: 'upstream answered 101 without the matching Sec-WebSocket-Accept' })]);
    socket.destroy();
  });
});

describe('path spellings: a deny catches every reading, through the proxy', () => {
  it.each([
    ['GET', 'api.github.com', '/User/repos', 'Method GET not allowed for api.github.com'],
    ['GET', 'api.example.com', '/admin/', 'Method GET not allowed for api.example.com'],
    ['GET', 'api.example.com', '/users/%40me', 'Method GET not allowed for api.example.com'],
    ['POST', 'api.example.com', '/v1/projects/p1%3Adelete', 'Method POST not allowed for api.example.com'],
    ['GET', 'api.example.com', '/odata/%24metadata', 'Method GET not allowed for api.example.com'],
    ['GET', 'api.example.com', '/public/admin%3B/secret', 'Method GET not allowed for api.example.com'],
    ['GET', 'files.example.com', '/public/..%3B/admin', /files\.example\.com/u],
    ['HEAD', 'api.example.com', '/private/report', 'Method HEAD not allowed for api.example.com'],
  ])('%s https://%s%s never reaches the upstream', async (method, host, target, reason) => {
    const s = await open();
    const [res] = await tunnelled(s, host, `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    expect(res?.statusCode).toBe(403);
    expect(up.requests).toEqual([]);
    const [entry] = s.networkLog().entries;
    expect(entry).toMatchObject({ method, url: `https://${host}${target}`, blocked: true, statusCode: 403 });
    expect(entry?.reason).toEqual(typeof reason === 'string' ? reason : expect.stringMatching(reason));
  });

  it('still relays the spelling the allow names', async () => {
    const s = await open();
    const [res] = await tunnelled(s, 'api.github.com', 'GET /users/octocat HTTP/1.1\r\nHost: api.github.com\r\n\r\n');
    expect(res?.statusCode).toBe(200);
    expect(up.requests.map((r) => r.path)).toEqual(['/users/octocat']);
  });
});

describe('address guard: the proxy host and the operator ranges', () => {
  it.each([
    ['CONNECT', '203.0.114.7:443', /own host/u],
    ['CONNECT', '198.51.99.5:443', /198\.51\.99\.0\/24/u],
  ])('refuses %s %s', async (_m, authority, reason) => {
    const s = await open();
    const t = await connectTunnel(s.socketPath, authority);
    expect(t.statusCode).toBe(403);
    expect(t.headers['x-egress-blocked']).toBe('destination-address');
    expect(reasonOf(t.body)).toMatch(reason);
    expect(decisions).toEqual([expect.objectContaining({ method: 'CONNECT', allowed: false, reason: expect.stringMatching(reason) as string })]);
  });

  it.each([
    ['http://203.0.114.7/x', /own host/u],
    ['http://198.51.99.5/x', /198\.51\.99\.0\/24/u],
  ])('refuses GET %s although the policy allows the address', async (url, reason) => {
    const s = await open();
    const [res] = await plain(s, `GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\n\r\n`);
    expect(res?.statusCode).toBe(403);
    expect(res?.headers['x-egress-blocked']).toBe('destination-address');
    expect(reasonOf(res?.body)).toMatch(reason);
    expect(decisions).toEqual([expect.objectContaining({ allowed: false, statusCode: 403, reason: expect.stringMatching(reason) as string })]);
  });

  it('lets a host the operator mapped to loopback through', async () => {
    const s = await open();
    const [res] = await plain(s, 'GET http://plain.example.com/ok HTTP/1.1\r\nHost: plain.example.com\r\n\r\n');
    expect(res?.statusCode).toBe(200);
    expect(up.requests.map((r) => r.path)).toEqual(['/ok']);
  });
});

describe('CONNECT cost: the policy first, leaves within limits', () => {
  let clockMs = 0;
  let limited: EgressProxy<CompiledPolicy>;
  const floodPolicy = compilePolicy(policyFromApi({ allowedDomains: ['*.flood.example'] }));
  let limitedSeq = 0;
  const openLimited = async () => {
    limitedSeq += 1;
    const s = await limited.openSession({ executionId: `flood-${limitedSeq}`, socketPath: path.join(dataDir, 'limited', `s${limitedSeq}`, 'proxy.sock'), context: floodPolicy });
    sessions.push(s);
    return s;
  };
  /** CONNECT, and hang up at once when accepted (no TLS needed: the leaf is issued before the 200). */
  const connectOnly = async (s: EgressSession<CompiledPolicy>, authority: string) => {
    const t = await connectTunnel(s.socketPath, authority);
    t.socket.destroy();
    return t;
  };

  beforeAll(async () => {
    limited = await EgressProxy.create<CompiledPolicy>({
      decide: (request, session) => decide(session.context, request),
      dataDir,
      leafLimits: { perSession: 3, perSecond: 2, refusedHostsPerSession: 0 },
      now: () => clockMs,
      onDecision: (d) => decisions.push(d),
    });
  });
  afterAll(async () => {
    await limited.close();
  });
  beforeEach(() => {
    // Every test starts with a full proxy-wide bucket.
    clockMs += 10_000;
  });

  it('answers a CONNECT to a host the policy never allows with 403 and its reason: no TLS, no leaf', async () => {
    const s = await openLimited();
    const before = limited.leafIssuances;
    const t = await connectOnly(s, 'evil.example.net:443');
    expect(t.statusCode).toBe(403);
    expect(t.headers['x-egress-blocked']).toBe('policy');
    expect(reasonOf(t.body)).toBe('Domain evil.example.net is not in allowed list');
    expect(limited.leafIssuances).toBe(before);
    expect(decisions).toEqual([expect.objectContaining({ method: 'CONNECT', host: 'evil.example.net', port: 443, allowed: false, statusCode: 403, rule: 'allowedDomains' })]);
    expect(s.networkLog().entries).toEqual([expect.objectContaining({ method: 'CONNECT', url: 'https://evil.example.net', blocked: true, reason: 'Domain evil.example.net is not in allowed list' })]);
  });

  it('intercepts a refused host only while the session budget lasts (so the program can read its 403), then refuses the CONNECT', async () => {
    const s = await open();
    // The default budget: a few refused hosts are intercepted, each costing one leaf.
    for (let i = 1; i <= 4; i++) {
      const [res] = await tunnelled(s, `refused-${i}.example.net`, `GET / HTTP/1.1\r\nHost: refused-${i}.example.net\r\n\r\n`);
      expect(res?.statusCode).toBe(403);
    }
    const before = proxy.leafIssuances;
    const t = await connectTunnel(s.socketPath, 'refused-5.example.net:443');
    expect(t.statusCode).toBe(403);
    expect(reasonOf(t.body)).toBe('Domain refused-5.example.net is not in allowed list');
    expect(proxy.leafIssuances).toBe(before);
    expect(up.requests).toEqual([]);
  });

  it('caps new leaves per session: 429 with Retry-After beyond, no leaf', async () => {
    const s = await openLimited();
    for (const n of [1, 2, 3]) {
      clockMs += 1000;
      expect((await connectOnly(s, `s${n}.flood.example:443`)).statusCode).toBe(200);
    }
    clockMs += 1000;
    const before = limited.leafIssuances;
    const t = await connectOnly(s, 's4.flood.example:443');
    expect(t.statusCode).toBe(429);
    expect(t.headers['retry-after']).toBe('60');
    expect(t.headers['x-egress-blocked']).toBe('rate-limited');
    expect(reasonOf(t.body)).toMatch(/Too many new hosts for this execution/u);
    expect(limited.leafIssuances).toBe(before);
    // A host whose leaf is cached costs nothing and is not limited.
    expect((await connectOnly(s, 's1.flood.example:443')).statusCode).toBe(200);
    expect(decisions.at(-1)).toMatchObject({ method: 'CONNECT', host: 's4.flood.example', allowed: false, statusCode: 429, rule: 'proxy:leaf-limit-session' });
  });

  it('caps new leaves per second across the proxy: 429 with Retry-After, then served once the second has passed', async () => {
    const [a, b] = [await openLimited(), await openLimited()];
    expect((await connectOnly(a, 'p1.flood.example:443')).statusCode).toBe(200);
    expect((await connectOnly(b, 'p2.flood.example:443')).statusCode).toBe(200);
    const t = await connectOnly(b, 'p3.flood.example:443');
    expect(t.statusCode).toBe(429);
    expect(t.headers['retry-after']).toBe('1');
    expect(reasonOf(t.body)).toMatch(/Too many new hosts for the proxy/u);
    clockMs += 1000;
    expect((await connectOnly(b, 'p3.flood.example:443')).statusCode).toBe(200);
  });
});

describe('method overrides the policy must see', () => {
  const form = (body: string, extra = '') => `Content-Type: application/x-www-form-urlencoded\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  it.each([
    ['the underscored header', '/items/1', 'X_HTTP_METHOD_OVERRIDE: DELETE\r\nContent-Length: 0\r\n\r\n'],
    ['_method in the query', '/items/1?_method=DELETE', 'Content-Length: 0\r\n\r\n'],
    ['an encoded _method in the query', '/items/1?x=1&%5Fmethod=delete', 'Content-Length: 0\r\n\r\n'],
    ['_method in a form body', '/items/1', form('a=1&_method=DELETE')],
    ['_method in a chunked form body', '/items/1', 'Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n5\r\na=1&_\r\nd\r\nmethod=DELETE\r\n0\r\n\r\n'],
  ])('refuses DELETE spelt as %s; nothing reaches the upstream', async (_case, target, rest) => {
    const s = await open();
    const [res] = (await tunnelled(s, 'api.example.com', `POST ${target} HTTP/1.1\r\nHost: api.example.com\r\n${rest}`));
    expect(res?.statusCode).toBe(403);
    expect(reasonOf(res?.body)).toBe('Method DELETE not allowed for api.example.com');
    expect(up.requests).toEqual([]);
    expect(s.networkLog().entries).toEqual([expect.objectContaining({ method: 'POST', blocked: true, reason: 'Method DELETE not allowed for api.example.com' })]);
  });

  it('answers Expect: 100-continue before reading the form, then refuses its _method', async () => {
    const s = await open();
    const t = await connectTunnel(s.socketPath, 'api.example.com:443');
    const tl = await tlsOverTunnel(t.socket, 'api.example.com', proxy.caCertPem);
    const body = '_method=DELETE&b=2';
    const received: Buffer[] = [];
    tl.on('data', (d: Buffer) => received.push(d));
    tl.write(`POST /items/1 HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`);
    await eventually(() => Buffer.concat(received).toString().startsWith('HTTP/1.1 100 Continue\r\n\r\n'), 'the 100 Continue');
    tl.write(body);
    await eventually(() => /\r\n\r\n\{.*\}$/su.test(Buffer.concat(received).toString().slice(25)), 'the final answer');
    tl.destroy();
    const [res] = parseResponses(Buffer.from(Buffer.concat(received).toString().slice('HTTP/1.1 100 Continue\r\n\r\n'.length)));
    expect(res?.statusCode).toBe(403);
    expect(reasonOf(res?.body)).toBe('Method DELETE not allowed for api.example.com');
    expect(up.requests).toEqual([]);
  });

  it('forwards an allowed form body exactly as sent, after reading it', async () => {
    const s = await open();
    const body = 'a=1&_method=PATCH&note=%E2%9C%93';
    const [res] = await plain(s, `POST http://api.example.com/items/1 HTTP/1.1\r\nHost: api.example.com\r\n${form(body)}`);
    expect(res?.statusCode).toBe(200);
    expect(up.requests.map((r) => [r.method, r.path, r.body])).toEqual([['POST', '/items/1', body]]);
  });

  it('streams a form body larger than the inspection limit unread', async () => {
    const s = await open();
    const body = `a=${'x'.repeat(70 * 1024)}`;
    const [res] = await plain(s, `POST http://api.example.com/items/1 HTTP/1.1\r\nHost: api.example.com\r\n${form(body)}`);
    expect(res?.statusCode).toBe(200);
    expect((JSON.parse(res?.body ?? '{}') as { bodyLength: number }).bodyLength).toBe(body.length);
  });
});
