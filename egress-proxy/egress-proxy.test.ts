/**
 * The proxy against real servers on loopback: a recording HTTP/HTTPS upstream
 * that api.stripe.com, dev-123.okta.com and api.github.com are mapped to, and
 * clients that speak through a session's Unix socket as a sandboxed program
 * would. For every forbidden case the upstream must have recorded nothing;
 * for every allowed one, exactly what the policy saw.
 */
import { promises as fs } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Decision, EgressRequest } from '../policies/index.ts';
import { canonicalHost, createDecider, policyFromApi } from '../policies/index.ts';
import { startUpstream } from '../test/fixtures/upstream.ts';
import type { Upstream } from '../test/fixtures/upstream.ts';
import { connectTunnel, rawExchange, request, tlsOverTunnel } from '../test/fixtures/upstream-client.ts';
import { eventually } from '../test/support/eventually.ts';
import { EgressProxy, DECISION_LOG_MESSAGE, DECISION_LOG_SAMPLE_EVERY } from './index.ts';
import type { EgressSession, EgressSessionInfo, NetworkLogEntry } from './index.ts';

type Mode = 'seed' | 'allow-all' | 'throws';

/** Every question the policy was asked, with its answer, in order. */
const asked: Array<{ request: EgressRequest; decision: Decision }> = [];

const OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];

/**
 * A small stand-in for policies' decide, shaped like the seed policy:
 * api.stripe.com (only /v1/…) and *.okta.com (GET yes, DELETE no), ports 80/443.
 * Ambiguous paths are refused, as the real matcher does for hosts with path rules.
 */
function seedDecide(req: EgressRequest): Decision {
  const host = canonicalHost(req.host);
  const block = (reason: string, rule: string): Decision => ({ allowed: false, reason, rule, host });
  if (host === null) return block(`Host ${req.host} cannot be parsed`, 'default');
  const okta = host.endsWith('.okta.com');
  if (host !== 'api.stripe.com' && !okta) return block(`Domain ${host} is not in allowed list`, 'default');
  if (req.port !== 80 && req.port !== 443) return block(`Port ${req.port} is not allowed for ${host}`, 'allowedDomains[0]');
  if (req.method === 'CONNECT') return { allowed: true, reason: `Domain ${host} is allowed`, rule: 'allowedDomains[0]', host };
  const methods = [req.method, ...OVERRIDE_HEADERS.map((h) => req.headers[h]).flat().filter((m): m is string => typeof m === 'string')].map((m) => m.toUpperCase());
  if (okta && methods.includes('DELETE')) return block('Method DELETE not allowed for *.okta.com', 'apiPathRules["*.okta.com"][1]');
  const pathOnly = req.path.split('?')[0] ?? '';
  if (/%2f|%5c|%2e|\/\/|\/\.\.?(?:\/|$)|\\/iu.test(pathOnly)) return block(`Path ${req.path} is ambiguous`, 'apiPathRules');
  if (!okta && !pathOnly.startsWith('/v1/')) return block(`No rule allows ${req.method} ${pathOnly} for api.stripe.com`, 'apiPathRules["api.stripe.com"]');
  return { allowed: true, reason: `Domain ${host} is allowed`, rule: okta ? 'apiPathRules["*.okta.com"][0]' : 'allowedDomains[0]', host };
}

function decide(req: EgressRequest, session: EgressSessionInfo<Mode>): Decision {
  let decision: Decision;
  switch (session.context) {
    case 'seed':
      decision = seedDecide(req);
      break;
    case 'allow-all':
      decision = { allowed: true, reason: 'allow all', rule: 'test', host: canonicalHost(req.host) };
      break;
    case 'throws':
      throw new Error('policy exploded');
  }
  asked.push({ request: req, decision });
  return decision;
}

/** What the proxy must send for an allowed decision: the policy's normalised path (plus the raw query) when it gave one, else the raw path. */
function sentPath(a: { request: EgressRequest; decision: Decision }): string {
  if (a.decision.path === undefined) return a.request.path;
  const q = a.request.path.indexOf('?');
  return q === -1 ? a.decision.path : a.decision.path + a.request.path.slice(q);
}

let up: Upstream;
let dataDir: string;
let proxy: EgressProxy<Mode>;
const logLines: Array<Record<string, unknown>> = [];
/** Every other info line: the one per accepted tunnel. */
const tunnelLines: Array<Record<string, unknown>> = [];
const sessions: EgressSession<Mode>[] = [];
let seq = 0;

async function open(context: Mode = 'seed', logCap?: number): Promise<EgressSession<Mode>> {
  seq += 1;
  const s = await proxy.openSession({ executionId: `exec-${seq}`, socketPath: path.join(dataDir, 'sandboxes', `s${seq}`, 'proxy.sock'), context, ...(logCap === undefined ? {} : { logCap }) });
  sessions.push(s);
  return s;
}

/** CONNECT + TLS to `authority`, then raw bytes; returns the parsed responses. */
async function viaTunnel(s: EgressSession<Mode>, authority: string, raw: string, servername = authority.replace(/:\d+$/u, '')) {
  const t = await connectTunnel(s.socketPath, authority);
  expect(t.statusCode).toBe(200);
  const tl = await tlsOverTunnel(t.socket, servername, proxy.caCertPem);
  const responses = await rawExchange(tl, raw);
  tl.destroy();
  return responses;
}

function json(body: string): Record<string, unknown> {
  return JSON.parse(body) as Record<string, unknown>;
}

async function logOf(s: EgressSession<Mode>, count: number): Promise<NetworkLogEntry[]> {
  await eventually(() => s.networkLog().entries.filter((e) => (e.durationMs >= 0 && e.statusCode !== 0) || e.blocked).length >= count, { timeoutMs: 2_000 });
  return s.networkLog().entries;
}

beforeAll(async () => {
  up = await startUpstream();
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-proxy-test-'));
  proxy = await EgressProxy.create<Mode>({
    decide,
    dataDir,
    hostMap: up.hostMap(['api.stripe.com', 'dev-123.okta.com', 'api.github.com']),
    upstreamCa: up.caPem,
    logger: { info: (obj, msg) => (msg === DECISION_LOG_MESSAGE ? logLines.push(obj as Record<string, unknown>) : tunnelLines.push(obj as Record<string, unknown>)), warn: () => undefined, error: () => undefined },
  });
});

afterAll(async () => {
  await proxy.close();
  await up.close();
  await fs.rm(dataDir, { recursive: true, force: true });
});

beforeEach(() => {
  up.reset();
  asked.length = 0;
  logLines.length = 0;
  tunnelLines.length = 0;
});

/**
 * The invariant behind every test: whatever reached the upstream was allowed
 * by the policy with exactly that method, path and host. Nothing else.
 */
afterEach(async () => {
  for (const r of up.requests) {
    const match = asked.find(
      (a) => a.decision.allowed && a.request.method === r.method && sentPath(a) === r.path && a.decision.host === canonicalHost(String(r.headers.host).replace(/:\d+$/u, '')),
    );
    expect(match, `upstream received ${r.method} ${r.path} (Host ${String(r.headers.host)}) that no allowed decision covers`).toBeDefined();
  }
  await Promise.all(sessions.splice(0).map((s) => s.close()));
});

describe('seed scenarios', () => {
  it('forwards an allowed HTTPS GET exactly as sent', async () => {
    const s = await open();
    const [res] = await viaTunnel(s, 'api.stripe.com:443', 'GET /v1/products?limit=3&x=%41 HTTP/1.1\r\nHost: api.stripe.com\r\nX-Test: One\r\nAccept: */*\r\n\r\n');
    expect(res?.statusCode).toBe(200);
    expect(up.requests).toHaveLength(1);
    const got = up.requests[0];
    expect(got).toMatchObject({ scheme: 'https', method: 'GET', path: '/v1/products?limit=3&x=%41' });
    expect(got.rawHeaders).toEqual(['Host', 'api.stripe.com', 'X-Test', 'One', 'Accept', '*/*', 'Connection', 'keep-alive']);
    const { entries, capped } = await s.close();
    expect(capped).toBe(false);
    expect(entries).toEqual([{ method: 'GET', url: 'https://api.stripe.com/v1/products?limit=3&x=%41', hostname: 'api.stripe.com', statusCode: 200, blocked: false, durationMs: expect.any(Number) }]);
  });

  it('answers a blocked DELETE with a readable 403 and sends nothing upstream', async () => {
    const s = await open();
    const [res] = await viaTunnel(s, 'dev-123.okta.com:443', 'DELETE /api/v1/users/123 HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n');
    expect(res?.statusCode).toBe(403);
    expect(res?.headers['x-egress-blocked']).toBe('policy');
    expect(res?.headers['content-type']).toBe('application/json');
    expect(json(res.body)).toEqual({ error: 'blocked by egress policy', reason: 'Method DELETE not allowed for *.okta.com' });
    expect(up.requests).toHaveLength(0);
    const { entries } = await s.close();
    expect(entries).toEqual([
      { method: 'DELETE', url: 'https://dev-123.okta.com/api/v1/users/123', hostname: 'dev-123.okta.com', statusCode: 403, blocked: true, reason: 'Method DELETE not allowed for *.okta.com', durationMs: expect.any(Number) },
    ]);
  });

  it('answers a domain outside the allow-list with 403 inside the tunnel', async () => {
    const s = await open();
    const [res] = await viaTunnel(s, 'api.github.com:443', 'GET /users/github HTTP/1.1\r\nHost: api.github.com\r\n\r\n');
    expect(res?.statusCode).toBe(403);
    expect(json(res.body)['reason']).toBe('Domain api.github.com is not in allowed list');
    expect(up.requests).toHaveLength(0);
    const { entries } = await s.close();
    expect(entries[0]).toMatchObject({ method: 'GET', url: 'https://api.github.com/users/github', hostname: 'api.github.com', statusCode: 403, blocked: true, reason: 'Domain api.github.com is not in allowed list' });
  });

  it('works for an ordinary client: https over CONNECT with the session CA, keep-alive, ALPN http/1.1 only', async () => {
    const s = await open();
    const t = await connectTunnel(s.socketPath, 'api.stripe.com:443');
    const tl = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const c = tls.connect({ socket: t.socket, servername: 'api.stripe.com', ca: proxy.caCertPem, ALPNProtocols: ['h2', 'http/1.1'] }, () => resolve(c));
      c.once('error', reject);
    });
    expect(tl.alpnProtocol).toBe('http/1.1');
    const cert = new X509Certificate(tl.getPeerX509Certificate()!.raw);
    expect(cert.subjectAltName).toBe('DNS:api.stripe.com');
    expect(cert.checkIssued(new X509Certificate(proxy.caCertPem))).toBe(true);
    const a = await request({ stream: tl }, { path: '/v1/a', headers: { host: 'api.stripe.com', connection: 'keep-alive' } });
    expect(a.statusCode).toBe(200);
    expect(json(a.body)['path']).toBe('/v1/a');
    tl.destroy();
  });

  // Node's https client cannot unref the socket under an idle proxied tunnel,
  // so the program lives until one side closes it: the proxy closes an idle
  // tunnel itself once the keep-alive it announced has passed, not the HTTP
  // server's (5 s plus a second of grace). tunnel-keep-alive.test.ts says when.
  it('reuses a tunnel for a prompt next request, then closes it once its announced keep-alive has passed', async () => {
    const s = await open();
    const t = await connectTunnel(s.socketPath, 'api.stripe.com:443');
    const tl = await tlsOverTunnel(t.socket, 'api.stripe.com', proxy.caCertPem);
    const closed = new Promise<void>((resolve) => tl.once('close', () => resolve()));
    // One whole response (the upstream always sends Content-Length), then the next request at once.
    const exchange = (path: string) =>
      new Promise<string>((resolve) => {
        let text = '';
        const onData = (chunk: Buffer) => {
          text += chunk.toString('latin1');
          const head = text.indexOf('\r\n\r\n');
          const length = /content-length: *(\d+)/iu.exec(text);
          if (head >= 0 && length && text.length >= head + 4 + Number(length[1])) {
            tl.off('data', onData);
            resolve(text.split('\r\n')[0] ?? '');
          }
        };
        tl.on('data', onData);
        tl.write(`GET ${path} HTTP/1.1\r\nHost: api.stripe.com\r\n\r\n`);
      });
    expect(await exchange('/v1/first')).toBe('HTTP/1.1 200 OK');
    expect(await exchange('/v1/second')).toBe('HTTP/1.1 200 OK');
    await closed;
    expect(up.requests.map((r) => r.path)).toEqual(['/v1/first', '/v1/second']);
  }, 10_000);
  // A program that makes one request must not be kept alive by its tunnel:
  // the hint makes Node's own clients close it after that response.
  it('tells a Node client inside a tunnel to close the connection after each response', async () => {
    const s = await open();
    const tunnels: tls.TLSSocket[] = [];
    // Shaped like Node's global agent, whose idle timeout a server's hint can shorten.
    const agent = new https.Agent({ keepAlive: true, timeout: 5_000 });
    agent.createConnection = ((_options: unknown, callback: (err: Error | null, socket?: Duplex) => void) => {
      connectTunnel(s.socketPath, 'api.stripe.com:443')
        .then((t) => tlsOverTunnel(t.socket, 'api.stripe.com', proxy.caCertPem))
        .then((tl) => {
          tunnels.push(tl);
          callback(null, tl);
        }, (err: Error) => callback(err));
      return undefined;
    });
    try {
      const answer = await new Promise<{ status: number | undefined; keepAlive: unknown }>((resolve, reject) => {
        https.get({ host: 'api.stripe.com', path: '/v1/first', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode, keepAlive: res.headers['keep-alive'] }));
        }).on('error', reject);
      });
      expect(answer).toEqual({ status: 200, keepAlive: 'timeout=1' });
      // Once the agent is done with the socket it either keeps it (a free socket) or closes it.
      expect(await eventually(() => tunnels[0]?.destroyed === true || Object.keys(agent.freeSockets).length > 0)).toBe(true);
      expect(Object.keys(agent.freeSockets)).toEqual([]);
    } finally {
      agent.destroy();
    }
  });
});

describe('plain HTTP through the proxy', () => {
  it('forwards an allowed absolute-form request with the target as Host', async () => {
    const s = await open();
    const res = await request({ socketPath: s.socketPath }, { path: 'http://api.stripe.com/v1/charges?x=1', headers: { host: 'api.stripe.com' } });
    expect(res.statusCode).toBe(200);
    expect(up.requests).toHaveLength(1);
    expect(up.requests[0]).toMatchObject({ scheme: 'http', method: 'GET', path: '/v1/charges?x=1' });
    expect(up.requests[0].headers.host).toBe('api.stripe.com');
    const { entries } = await s.close();
    expect(entries[0]).toMatchObject({ url: 'http://api.stripe.com/v1/charges?x=1', statusCode: 200, blocked: false });
  });

  it('blocks a plain request the policy refuses', async () => {
    const s = await open();
    const res = await request({ socketPath: s.socketPath }, { method: 'DELETE', path: 'http://dev-123.okta.com/api/v1/users/1', headers: { host: 'dev-123.okta.com' } });
    expect(res.statusCode).toBe(403);
    expect(res.headers['x-egress-blocked']).toBe('policy');
    expect(up.requests).toHaveLength(0);
  });

  it('refuses a Host header that disagrees with the absolute-form URI', async () => {
    const s = await open();
    const res = await request({ socketPath: s.socketPath }, { path: 'http://api.stripe.com/v1/x', headers: { host: 'api.github.com' } });
    expect(res.statusCode).toBe(403);
    expect(res.headers['x-egress-blocked']).toBe('host-mismatch');
    expect(up.requests).toHaveLength(0);
    expect((await s.close()).entries[0]).toMatchObject({ hostname: 'api.stripe.com', blocked: true });
  });

  it('refuses origin-form requests to the proxy itself and https:// absolute-form', async () => {
    const s = await open();
    expect((await request({ socketPath: s.socketPath }, { path: '/v1/x', headers: { host: 'api.stripe.com' } })).statusCode).toBe(400);
    expect((await request({ socketPath: s.socketPath }, { path: 'https://api.stripe.com/v1/x', headers: { host: 'api.stripe.com' } })).statusCode).toBe(400);
    expect((await request({ socketPath: s.socketPath }, { path: 'http://user@api.stripe.com/v1/x', headers: { host: 'api.stripe.com' } })).statusCode).toBe(400);
    expect(up.requests).toHaveLength(0);
  });
});

describe('upstream connections', () => {
  const WIDTH = 32;

  async function waitFor(done: () => boolean, ms: number): Promise<void> {
    await eventually(done, { timeoutMs: ms, everyMs: 10 });
  }

  /**
   * WIDTH POSTs on client connections of their own, all held in flight (the
   * upstream answers only once a body has arrived) until `ready`, then
   * released together; returns the status codes.
   */
  async function wave(s: EgressSession<Mode>, scheme: 'http' | 'https', ready: () => Promise<void>): Promise<number[]> {
    const open = (): Promise<Duplex> =>
      scheme === 'http'
        ? new Promise((resolve, reject) => {
            const c = net.connect({ path: s.socketPath }, () => resolve(c));
            c.once('error', reject);
          })
        : connectTunnel(s.socketPath, 'api.stripe.com:443').then((t) => tlsOverTunnel(t.socket, 'api.stripe.com', proxy.caCertPem));
    const streams = await Promise.all(Array.from({ length: WIDTH }, open));
    const target = (i: number) => (scheme === 'http' ? `http://api.stripe.com/v1/w${i}` : `/v1/w${i}`);
    streams.forEach((c, i) => c.write(`POST ${target(i)} HTTP/1.1\r\nHost: api.stripe.com\r\nContent-Length: 1\r\n\r\n`));
    await ready();
    const answers = await Promise.all(streams.map((c) => rawExchange(c, 'x', 100)));
    for (const c of streams) c.destroy();
    return answers.map((a) => a[0]?.statusCode ?? 0);
  }

  // With fewer idle connections kept than were in flight, the surplus is closed after each answer and redialled
  // (for HTTPS, a TLS handshake) for the next request.
  it.each(['http', 'https'] as const)('keeps every %s upstream connection a burst opened for the next burst', async (scheme) => {
    const s = await open();
    const before = up.connections[scheme];
    const dialled = () => up.connections[scheme] - before;
    const ok = Array.from({ length: WIDTH }, () => 200);
    expect(await wave(s, scheme, () => waitFor(() => dialled() >= WIDTH, 5_000))).toEqual(ok);
    expect(dialled()).toBe(WIDTH);
    // Time for the proxy to take up the second burst; a redial would show at once.
    expect(await wave(s, scheme, () => waitFor(() => dialled() > WIDTH, 300))).toEqual(ok);
    expect(dialled()).toBe(WIDTH);
  });
});

describe('confusion inside a tunnel', () => {
  it('refuses a Host header naming another host', async () => {
    const s = await open();
    const [res] = await viaTunnel(s, 'api.stripe.com:443', 'GET /v1/products HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n');
    expect(res?.statusCode).toBe(403);
    expect(res?.headers['x-egress-blocked']).toBe('host-mismatch');
    expect(up.requests).toHaveLength(0);
    const { entries } = await s.close();
    expect(entries[0]).toMatchObject({ hostname: 'api.stripe.com', blocked: true, statusCode: 403 });
  });

  it('refuses a Host header naming another port', async () => {
    const s = await open();
    const [res] = await viaTunnel(s, 'api.stripe.com:443', 'GET /v1/products HTTP/1.1\r\nHost: api.stripe.com:8443\r\n\r\n');
    expect(res?.statusCode).toBe(403);
    expect(up.requests).toHaveLength(0);
  });

  it('accepts Host spellings of the same target (case, trailing dot, explicit default port)', async () => {
    const s = await open();
    const responses = await viaTunnel(
      s,
      'api.stripe.com:443',
      'GET /v1/a HTTP/1.1\r\nHost: API.Stripe.com\r\n\r\nGET /v1/b HTTP/1.1\r\nHost: api.stripe.com.\r\n\r\nGET /v1/c HTTP/1.1\r\nHost: api.stripe.com:443\r\n\r\n',
    );
    expect(responses.map((r) => r.statusCode)).toEqual([200, 200, 200]);
    expect(up.requests.map((r) => r.headers.host)).toEqual(['api.stripe.com', 'api.stripe.com', 'api.stripe.com']);
  });

  it('refuses a TLS SNI naming another host at the handshake, and logs it', async () => {
    const s = await open();
    const t = await connectTunnel(s.socketPath, 'api.stripe.com:443');
    expect(t.statusCode).toBe(200);
    await expect(tlsOverTunnel(t.socket, 'api.github.com', proxy.caCertPem)).rejects.toThrow();
    const entries = await logOf(s, 1);
    expect(entries[0]).toMatchObject({ method: 'CONNECT', hostname: 'api.stripe.com', blocked: true, statusCode: 0 });
    expect(entries[0]?.reason).toMatch(/SNI names api\.github\.com/u);
    expect(up.requests).toHaveLength(0);
  });

  it('refuses an absolute-form URI naming another host, accepts one naming the target', async () => {
    const s = await open();
    const responses = await viaTunnel(
      s,
      'api.stripe.com:443',
      'GET https://api.github.com/users HTTP/1.1\r\nHost: api.stripe.com\r\n\r\nGET https://api.stripe.com/v1/abs?q=1 HTTP/1.1\r\nHost: api.stripe.com\r\n\r\n',
    );
    expect(responses[0]?.statusCode).toBe(403);
    expect(responses[0]?.headers['x-egress-blocked']).toBe('host-mismatch');
    expect(responses[1]?.statusCode).toBe(200);
    expect(up.requests.map((r) => r.path)).toEqual(['/v1/abs?q=1']);
  });

  it('decides each pipelined request on its own: a DELETE after an allowed GET is blocked', async () => {
    const s = await open();
    const responses = await viaTunnel(s, 'dev-123.okta.com:443', 'GET /api/v1/users/1 HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\nDELETE /api/v1/users/1 HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n');
    expect(responses.map((r) => r.statusCode)).toEqual([200, 403]);
    expect(up.requests.map((r) => r.method)).toEqual(['GET']);
    const { entries } = await s.close();
    expect(entries.map((e) => [e.method, e.statusCode, e.blocked])).toEqual([
      ['GET', 200, false],
      ['DELETE', 403, true],
    ]);
  });

  it.each([
    ['Content-Length with Transfer-Encoding', 'POST /v1/charges HTTP/1.1\r\nHost: api.stripe.com\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/smuggled HTTP/1.1\r\nHost: api.stripe.com\r\n\r\n', 'ambiguous-framing'],
    ['Transfer-Encoding with Content-Length', 'POST /v1/charges HTTP/1.1\r\nHost: api.stripe.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\nGET /v1/smuggled HTTP/1.1\r\nHost: api.stripe.com\r\n\r\n', 'ambiguous-framing'],
    ['duplicate Host', 'GET /v1/products HTTP/1.1\r\nHost: api.stripe.com\r\nHost: api.github.com\r\n\r\n', 'ambiguous-framing'],
    ['duplicate Content-Length', 'POST /v1/charges HTTP/1.1\r\nHost: api.stripe.com\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 'ambiguous-framing'],
    ['lowercase method', 'delete /api/v1/users/1 HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n', 'malformed-request'],
    ['missing Host on HTTP/1.1', 'GET /v1/products HTTP/1.1\r\n\r\n', 'malformed-request'],
  ])('refuses %s with 400 and sends nothing upstream', async (_name, raw, code) => {
    const s = await open();
    const authority = raw.includes('okta') ? 'dev-123.okta.com:443' : 'api.stripe.com:443';
    const responses = await viaTunnel(s, authority, raw);
    expect(responses[0]?.statusCode).toBe(400);
    expect(responses[0]?.headers['x-egress-blocked']).toBe(code);
    expect(up.requests).toHaveLength(0);
    const entries = await logOf(s, 1);
    expect(entries[0]).toMatchObject({ blocked: true, statusCode: 400 });
  });

  it('logs the host of a plain request the parser refused', async () => {
    const s = await open();
    const c = net.connect(s.socketPath);
    const responses = await rawExchange(c, 'POST http://api.stripe.com/v1/charges HTTP/1.1\r\nHost: api.stripe.com\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n');
    c.destroy();
    expect(responses[0]?.headers['x-egress-blocked']).toBe('ambiguous-framing');
    const entries = await logOf(s, 1);
    expect(entries[0]).toMatchObject({ method: 'POST', url: 'http://api.stripe.com/v1/charges', hostname: 'api.stripe.com', blocked: true, statusCode: 400 });
    expect(up.requests).toHaveLength(0);
  });

  it('logs the method of a request the parser refused', async () => {
    const s = await open();
    await viaTunnel(s, 'dev-123.okta.com:443', 'delete /api/v1/users/1 HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n');
    const entries = await logOf(s, 1);
    expect(entries[0]).toMatchObject({ method: 'delete', url: 'https://dev-123.okta.com/api/v1/users/1', hostname: 'dev-123.okta.com' });
  });

  it('passes method-override headers to the policy (X-HTTP-Method-Override: DELETE is blocked)', async () => {
    const s = await open();
    const [res] = await viaTunnel(s, 'dev-123.okta.com:443', 'POST /api/v1/users/1 HTTP/1.1\r\nHost: dev-123.okta.com\r\nX-HTTP-Method-Override: DELETE\r\nContent-Length: 0\r\n\r\n');
    expect(res?.statusCode).toBe(403);
    expect(up.requests).toHaveLength(0);
  });

  it.each(['/v1/../admin', '/v1/%2e%2e/admin', '/v1/%2E%2E/admin', '/v1/..%2fadmin', '/v1%2f..%2fadmin', '//admin', '/v1//../admin', '/v1/./products', '/v1/products%00', '/v1\\..\\admin'])(
    'sends %s upstream exactly as checked, or not at all',
    async (p) => {
      const s = await open();
      const responses = await viaTunnel(s, 'api.stripe.com:443', `GET ${p} HTTP/1.1\r\nHost: api.stripe.com\r\n\r\n`);
      const status = responses[0]?.statusCode;
      // Blocked, or forwarded byte for byte (the afterEach invariant also ties it to an allowed decision).
      if (status === 200) expect(up.requests.map((r) => r.path)).toEqual([p]);
      else {
        expect([400, 403]).toContain(status);
        expect(up.requests).toHaveLength(0);
      }
    },
  );

  it('sends an allowed unusual path byte for byte', async () => {
    const s = await open();
    await viaTunnel(s, 'api.stripe.com:443', 'GET /v1/a;b=c/%41%7e?q=%2e%2e&r=/../ HTTP/1.1\r\nHost: api.stripe.com\r\n\r\n');
    expect(up.requests.map((r) => r.path)).toEqual(['/v1/a;b=c/%41%7e?q=%2e%2e&r=/../']);
  });

  it('refuses CONNECT inside a tunnel', async () => {
    const s = await open();
    const [res] = await viaTunnel(s, 'api.stripe.com:443', 'CONNECT api.github.com:443 HTTP/1.1\r\nHost: api.github.com:443\r\n\r\n');
    expect(res?.statusCode).toBe(400);
    expect(up.requests).toHaveLength(0);
  });

  it('asks before letting a client send its body (Expect: 100-continue)', async () => {
    const s = await open();
    const [res] = await viaTunnel(s, 'dev-123.okta.com:443', 'DELETE /api/v1/users/1 HTTP/1.1\r\nHost: dev-123.okta.com\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n');
    expect(res?.statusCode).toBe(403);
    expect(up.requests).toHaveLength(0);
  });

  it('streams request bodies (chunked and sized) to the upstream', async () => {
    const s = await open();
    const responses = await viaTunnel(
      s,
      'api.stripe.com:443',
      'POST /v1/charges HTTP/1.1\r\nHost: api.stripe.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nPOST /v1/refunds HTTP/1.1\r\nHost: api.stripe.com\r\nContent-Length: 3\r\n\r\nabc',
    );
    expect(responses.map((r) => r.statusCode)).toEqual([200, 200]);
    expect(up.requests.map((r) => r.body)).toEqual(['hello', 'abc']);
  });
});

describe('WebSocket upgrades', () => {
  it('decides the upgrade request: allowed upgrades are relayed, blocked ones get 403', async () => {
    const s = await open();
    const upgrade = (host: string) => `GET /v1/socket HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
    const blocked = await viaTunnel(s, 'api.github.com:443', upgrade('api.github.com'));
    expect(blocked[0]?.statusCode).toBe(403);
    expect(up.requests).toHaveLength(0);

    const t = await connectTunnel(s.socketPath, 'api.stripe.com:443');
    const tl = await tlsOverTunnel(t.socket, 'api.stripe.com', proxy.caCertPem);
    const [res] = await rawExchange(tl, upgrade('api.stripe.com'));
    expect(res?.statusCode).toBe(101);
    const echoed = await new Promise<string>((resolve) => {
      tl.once('data', (d: Buffer) => resolve(d.toString()));
      tl.write('ping');
    });
    expect(echoed).toBe('ping');
    tl.destroy();
    expect(up.requests.map((r) => [r.method, r.path, r.headers.upgrade])).toEqual([['GET', '/v1/socket', 'websocket']]);
  });
});

describe('destinations: SSRF and ports', () => {
  it.each(['2130706433:443', '0x7f.1:443', '127.1:443', '[::1]:443', '[::ffff:7f00:1]:443', '[::ffff:127.0.0.1]:80', '169.254.169.254:80', '10.0.0.1:443', '[fe80::1]:443', '[fd00::1]:443', '0.0.0.0:443', '[64:ff9b::7f00:1]:443'])(
    'refuses CONNECT to %s even when the policy allows everything',
    async (authority) => {
      const s = await open('allow-all');
      const t = await connectTunnel(s.socketPath, authority);
      expect(t.statusCode).toBe(403);
      expect(t.headers['x-egress-blocked']).toBe('destination-address');
      expect(json(t.body)['error']).toBe('blocked by egress policy');
      expect(up.requests).toHaveLength(0);
      const { entries } = await s.close();
      expect(entries[0]).toMatchObject({ method: 'CONNECT', blocked: true, statusCode: 403 });
    },
  );

  it.each(['http://169.254.169.254/latest/meta-data/', 'http://2130706433/', 'http://[::ffff:7f00:1]/', 'http://localhost/', 'http://LOCALHOST./'])(
    'refuses plain %s even when the policy allows everything',
    async (url) => {
      const s = await open('allow-all');
      const res = await request({ socketPath: s.socketPath }, { path: url, headers: { host: new URL(url).host } });
      expect(res.statusCode).toBe(403);
      expect(res.headers['x-egress-blocked']).toBe('destination-address');
      expect(up.requests).toHaveLength(0);
    },
  );

  it('refuses localhost and 127.0.0.1 (with the upstream\'s real port) under an allow-all policy', async () => {
    const s = await open('allow-all');
    const byIp = await connectTunnel(s.socketPath, `127.0.0.1:${up.httpsPort}`);
    expect(byIp.statusCode).toBe(403);
    const byName = await request({ socketPath: s.socketPath }, { path: `http://localhost:${up.httpPort}/`, headers: { host: `localhost:${up.httpPort}` } });
    expect(byName.statusCode).toBe(403);
    // A name is accepted at CONNECT (the program must see a 403), then refused per request once resolved.
    const [inTunnel] = await viaTunnel(s, 'localhost:443', 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    expect(inTunnel?.statusCode).toBe(403);
    expect(json(inTunnel.body)['reason']).toMatch(/loopback/u);
    expect(up.requests).toHaveLength(0);
  });

  it('refuses CONNECT to port 22 when the policy does not open it', async () => {
    const s = await open();
    const t = await connectTunnel(s.socketPath, 'api.stripe.com:22');
    expect(t.statusCode).toBe(403);
    expect(json(t.body)['reason']).toBe('Port 22 is not allowed for api.stripe.com');
    expect(asked.at(-1)?.request).toMatchObject({ method: 'CONNECT', host: 'api.stripe.com', port: 22, path: '' });
    const { entries } = await s.close();
    expect(entries[0]).toMatchObject({ method: 'CONNECT', url: 'https://api.stripe.com:22', blocked: true, statusCode: 403 });
  });

  it.each(['api.stripe.com', 'api.stripe.com:0x1bb', 'api.stripe.com:99999', 'api.stripe.com:443/x', '[::1:443', 'user@api.stripe.com:443', ':443'])('refuses the malformed CONNECT target %j with 400', async (authority) => {
    const s = await open('allow-all');
    const t = await connectTunnel(s.socketPath, authority);
    expect(t.statusCode).toBe(400);
    expect(up.requests).toHaveLength(0);
  });

  it('fails closed when the policy throws', async () => {
    const s = await open('throws');
    const [res] = await viaTunnel(s, 'api.stripe.com:443', 'GET /v1/products HTTP/1.1\r\nHost: api.stripe.com\r\n\r\n');
    expect(res?.statusCode).toBe(403);
    expect(res?.headers['x-egress-blocked']).toBe('policy-error');
    expect(up.requests).toHaveLength(0);
  });

  it('verifies upstream TLS: an upstream signed by an untrusted CA gets 502, not a silent pass', async () => {
    const strict = await EgressProxy.create<Mode>({ decide, dataDir, hostMap: up.hostMap(['api.stripe.com']) });
    try {
      const s = await strict.openSession({ executionId: 'strict', socketPath: path.join(dataDir, 'sandboxes', 'strict', 'proxy.sock'), context: 'seed' });
      const t = await connectTunnel(s.socketPath, 'api.stripe.com:443');
      const tl = await tlsOverTunnel(t.socket, 'api.stripe.com', strict.caCertPem);
      const [res] = await rawExchange(tl, 'GET /v1/products HTTP/1.1\r\nHost: api.stripe.com\r\n\r\n');
      expect(res?.statusCode).toBe(502);
      const { entries } = await s.close();
      expect(entries[0]).toMatchObject({ statusCode: 502, blocked: false });
      expect(entries[0]?.reason).toMatch(/certificate/iu);
    } finally {
      await strict.close();
    }
  });
});

describe('network log and decision log lines', () => {
  it('keeps entries in arrival order with the documented fields, capped per session', async () => {
    const s = await open('seed', 3);
    await viaTunnel(
      s,
      'dev-123.okta.com:443',
      ['GET /a', 'DELETE /b', 'GET /c', 'GET /d', 'GET /e'].map((l) => `${l} HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n`).join(''),
    );
    const { entries, capped } = await s.close();
    expect(capped).toBe(true);
    expect(entries.map((e) => `${e.method} ${e.url} ${e.statusCode}`)).toEqual(['GET https://dev-123.okta.com/a 200', 'DELETE https://dev-123.okta.com/b 403', 'GET https://dev-123.okta.com/c 200']);
    for (const e of entries) expect(Object.keys(e).sort()).toEqual(e.blocked ? ['blocked', 'durationMs', 'hostname', 'method', 'reason', 'statusCode', 'url'] : ['blocked', 'durationMs', 'hostname', 'method', 'statusCode', 'url']);
    // Past the cap the log lines are sampled: the first one past it is written (marked), the next is not.
    // (Lines are written as answers finish, which need not be arrival order.)
    expect(logLines.map((l) => l.url).sort()).toEqual(['a', 'b', 'c', 'd'].map((p) => `https://dev-123.okta.com/${p}`));
    expect(logLines.filter((l) => 'sampled' in l)).toEqual([expect.objectContaining({ url: 'https://dev-123.okta.com/d', sampled: DECISION_LOG_SAMPLE_EVERY })]);
  });

  it('writes one log line per decision with fixed field names', async () => {
    const s = await open();
    await viaTunnel(s, 'dev-123.okta.com:443', 'DELETE /api/v1/users/123 HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n');
    await s.close();
    expect(logLines).toEqual([
      {
        executionId: s.executionId,
        method: 'DELETE',
        url: 'https://dev-123.okta.com/api/v1/users/123',
        host: 'dev-123.okta.com',
        port: 443,
        allowed: false,
        wouldBlock: false,
        reason: 'Method DELETE not allowed for *.okta.com',
        rule: 'apiPathRules["*.okta.com"][1]',
        statusCode: 403,
        durationMs: expect.any(Number),
      },
    ]);
    expect(DECISION_LOG_MESSAGE).toBe('egress decision');
    // The tunnel the request came through has its own line.
    expect(tunnelLines).toEqual([{ executionId: s.executionId, method: 'CONNECT', host: 'dev-123.okta.com', port: 443, allowed: true, rule: 'allowedDomains[0]' }]);
  });
});

describe('sessions, sockets and the CA', () => {
  it('creates the socket 0666 with ca.pem beside it, and close() removes both and returns the log', async () => {
    const s = await open();
    expect((await fs.stat(s.socketPath)).mode & 0o777).toBe(0o666);
    expect(await fs.readFile(s.caCertPath, 'utf8')).toBe(proxy.caCertPem);
    await request({ socketPath: s.socketPath }, { path: 'http://api.stripe.com/v1/x', headers: { host: 'api.stripe.com' } });
    const result = await s.close();
    expect(result.entries).toHaveLength(1);
    await expect(fs.stat(s.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.stat(s.caCertPath)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await s.close()).toEqual(result);
  });

  it('leaves a ca.pem already placed with the right certificate alone, and replaces any other', async () => {
    for (const [placed, kept] of [[proxy.caCertPem, true], ['-----BEGIN CERTIFICATE-----\nstale\n', false]] as const) {
      const dir = path.join(dataDir, 'sandboxes', `placed-${String(kept)}`);
      await fs.mkdir(dir, { recursive: true });
      await fs.writeFile(path.join(dir, 'ca.pem'), placed);
      const before = await fs.stat(path.join(dir, 'ca.pem'));
      const s = await proxy.openSession({ executionId: `placed-${String(kept)}`, socketPath: path.join(dir, 'proxy.sock'), context: 'seed' });
      sessions.push(s);
      const after = await fs.stat(s.caCertPath);
      expect(after.ino === before.ino, `inode kept for ${kept ? 'the right' : 'a stale'} certificate`).toBe(kept);
      expect(await fs.readFile(s.caCertPath, 'utf8')).toBe(proxy.caCertPem);
      expect(after.mode & 0o777).toBe(0o644);
    }
  });

  it('keeps sessions apart: each socket serves only its own session, a closed one serves nobody', async () => {
    const a = await open('seed');
    const b = await open('allow-all');
    // The same request is allowed through b and blocked through a: each socket carries its own policy.
    const viaA = await request({ socketPath: a.socketPath }, { path: 'http://api.github.com/users', headers: { host: 'api.github.com' } });
    const viaB = await request({ socketPath: b.socketPath }, { path: 'http://api.github.com/users', headers: { host: 'api.github.com' } });
    expect([viaA.statusCode, viaB.statusCode]).toEqual([403, 200]);
    const logA = await a.close();
    await expect(
      new Promise((resolve, reject) => {
        const c = net.connect(a.socketPath, () => resolve(c));
        c.on('error', reject);
      }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
    const logB = await b.close();
    expect(logA.entries.map((e) => e.statusCode)).toEqual([403]);
    expect(logB.entries.map((e) => e.statusCode)).toEqual([200]);
  });

  it('refuses a second session on the same socket path', async () => {
    const s = await open();
    await expect(proxy.openSession({ executionId: 'dup', socketPath: s.socketPath, context: 'seed' })).rejects.toMatchObject({ code: 'ERR_EGRESS_SESSION_EXISTS' });
  });

  it('cuts open connections on close', async () => {
    const s = await open();
    const t = await connectTunnel(s.socketPath, 'api.stripe.com:443');
    const tl = await tlsOverTunnel(t.socket, 'api.stripe.com', proxy.caCertPem);
    const closed = new Promise((resolve) => tl.once('close', resolve));
    await s.close();
    await closed;
  });

  it('keeps the CA key 0600 and reuses the CA on the next start', async () => {
    const keyStat = await fs.stat(path.join(dataDir, 'ca', 'ca.key.pem'));
    expect(keyStat.mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(dataDir, 'ca', 'ca.pem'))).mode & 0o777).toBe(0o644);
    expect((await fs.stat(path.join(dataDir, 'ca'))).mode & 0o777).toBe(0o700);
    const again = await EgressProxy.create<Mode>({ decide, dataDir });
    expect(again.caCertPem).toBe(proxy.caCertPem);
    await again.close();
  });

  it('refuses to start with a CA key readable by others', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-ca-'));
    try {
      await (await EgressProxy.create<Mode>({ decide, dataDir: dir })).close();
      await fs.chmod(path.join(dir, 'ca', 'ca.key.pem'), 0o644);
      await expect(EgressProxy.create<Mode>({ decide, dataDir: dir })).rejects.toMatchObject({ code: 'ERR_EGRESS_CA' });
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('with the real policy decider', () => {
  /** The seed guide's policy, through policies' own transform and matcher. */
  const seedPolicy = createDecider(
    policyFromApi({
      allowedDomains: ['api.stripe.com', '*.okta.com'],
      apiPathRules: {
        '*.okta.com': [
          { path: '/*', allow: true, method: 'GET' },
          { path: '/*', allow: false, method: 'DELETE' },
        ],
      },
      allowedPackages: ['@okta'],
      allowedBinaries: ['ffmpeg'],
    }),
  );
  let real: EgressProxy<null>;

  beforeAll(async () => {
    real = await EgressProxy.create<null>({
      decide: (req) => {
        const decision = seedPolicy(req);
        asked.push({ request: req, decision });
        return decision;
      },
      dataDir,
      hostMap: up.hostMap(['api.stripe.com', 'dev-123.okta.com', 'api.github.com']),
      upstreamCa: up.caPem,
    });
  });
  afterAll(async () => {
    await real.close();
  });

  async function tunnel(authority: string, raw: string) {
    seq += 1;
    const s = await real.openSession({ executionId: `real-${seq}`, socketPath: path.join(dataDir, 'sandboxes', `real${seq}`, 'proxy.sock'), context: null });
    const t = await connectTunnel(s.socketPath, authority);
    const tl = await tlsOverTunnel(t.socket, authority.replace(/:\d+$/u, ''), real.caCertPem);
    const responses = await rawExchange(tl, raw);
    tl.destroy();
    return { responses, log: await s.close() };
  }

  it('reproduces seed Tests 2-4: stripe GET 200, okta DELETE 403, github 403', async () => {
    const stripe = await tunnel('api.stripe.com:443', 'GET /v1/products HTTP/1.1\r\nHost: api.stripe.com\r\n\r\n');
    const okta = await tunnel('dev-123.okta.com:443', 'DELETE /api/v1/users/123 HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n');
    const github = await tunnel('api.github.com:443', 'GET /users/github HTTP/1.1\r\nHost: api.github.com\r\n\r\n');
    expect([stripe, okta, github].map((r) => r.responses[0]?.statusCode)).toEqual([200, 403, 403]);
    expect(okta.log.entries[0]).toMatchObject({ method: 'DELETE', url: 'https://dev-123.okta.com/api/v1/users/123', statusCode: 403, blocked: true, reason: 'Method DELETE not allowed for *.okta.com' });
    expect(github.log.entries[0]).toMatchObject({ hostname: 'api.github.com', statusCode: 403, blocked: true, reason: 'Domain api.github.com is not in allowed list' });
    expect(up.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/products']);
  });

  it('sends the path the rules matched: dot segments and escapes cannot mean something else upstream', async () => {
    const { responses } = await tunnel('dev-123.okta.com:443', 'GET /api/v1/%75sers/./x/../123?q=%2e%2e HTTP/1.1\r\nHost: dev-123.okta.com\r\n\r\n');
    expect(responses[0]?.statusCode).toBe(200);
    expect(up.requests.map((r) => r.path)).toEqual(['/api/v1/users/123?q=%2e%2e']);
  });
});
