/**
 * The standalone proxy's control API over real loopback HTTP, with a real
 * proxy behind it: who may talk to it, where it agrees to listen, and that a
 * session it opens enforces the policy that came over the wire.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalHost, decide, DEFAULT_POLICY, policyFromApi, type CompiledPolicy } from '../policies/index.ts';
import { request } from '../test/fixtures/upstream-client.ts';
import { ControlChannelError, ControlClient, ControlServer, EgressProxy } from './index.ts';

const SECRET = 'control-test-secret-0123456789abcdef';
const POLICY = policyFromApi({ allowedDomains: ['api.example.com'], apiPathRules: { 'api.example.com': [{ path: '/*', allow: false, method: 'DELETE' }] } });

let tmp: string;
let sandboxes: string;
let proxy: EgressProxy<CompiledPolicy>;
let control: ControlServer;
let url: string;
let sandboxCount = 0;

async function sandboxDir(): Promise<string> {
  const dir = path.join(sandboxes, `session${++sandboxCount}`);
  await fs.mkdir(dir);
  return dir;
}

function call(method: string, route: string, options: { secret?: string | null; body?: unknown } = {}): Promise<Response> {
  const secret = options.secret === undefined ? SECRET : options.secret;
  return fetch(`${url}${route}`, {
    method,
    headers: { ...(secret === null ? {} : { authorization: `Bearer ${secret}` }), 'content-type': 'application/json' },
    ...(options.body === undefined ? {} : { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }),
  });
}

beforeAll(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-control-'));
  sandboxes = path.join(tmp, 'sandboxes');
  await fs.mkdir(sandboxes);
  proxy = await EgressProxy.create<CompiledPolicy>({ decide: (req, s) => decide(s.context, req), canonicalHost, dataDir: path.join(tmp, 'data') });
  control = new ControlServer({ proxy, secret: SECRET, sandboxesDir: sandboxes });
  url = await control.listen(0, '127.0.0.1');
});

afterAll(async () => {
  await control?.close();
  await proxy?.close();
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('authentication', () => {
  it('answers /healthz without the secret', async () => {
    const res = await call('GET', '/healthz', { secret: null });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true });
  });

  it.each([
    ['no secret', null],
    ['a wrong secret', 'x'.repeat(SECRET.length)],
    ['a prefix of the secret', SECRET.slice(0, -1)],
  ])('refuses %s with 401', async (_label, secret) => {
    for (const [method, route] of [['GET', '/ca.pem'], ['POST', '/sessions'], ['DELETE', '/sessions/abc']] as const) {
      const res = await call(method, route, { secret, body: method === 'POST' ? {} : undefined });
      expect(res.status, `${method} ${route}`).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(await res.json()).toMatchObject({ code: 'unauthorized' });
    }
    expect(control.sessionCount).toBe(0);
  });

  it('serves the CA certificate to the secret holder', async () => {
    const res = await call('GET', '/ca.pem');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(proxy.caCertPem);
  });

  it('refuses a secret shorter than 32 characters at construction', () => {
    expect(() => new ControlServer({ proxy, secret: 'short', sandboxesDir: sandboxes })).toThrow(RangeError);
    expect(() => new ControlClient({ url, secret: 'short' })).toThrow(RangeError);
  });
});

describe('socket paths', () => {
  it.each([
    ['outside the sandboxes directory', () => path.join(tmp, 'elsewhere', 'proxy.sock')],
    ['climbing out with ..', () => `${sandboxes}/../sandboxes2/x/proxy.sock`],
    ['with a dot segment inside', () => `${sandboxes}/sandbox1/../sandbox1/proxy.sock`],
    ['the sandboxes directory itself', () => path.join(sandboxes, 'proxy.sock')],
    ['two levels down', () => path.join(sandboxes, 'sandbox1', 'deeper', 'proxy.sock')],
    ['relative', () => 'sandboxes/sandbox1/proxy.sock'],
    ['not a .sock name', () => path.join(sandboxes, 'sandbox1', 'ca.pem')],
    ['in a sandbox directory that does not exist', () => path.join(sandboxes, 'missing', 'proxy.sock')],
  ])('refuses a path %s with 400', async (_label, socketPath) => {
    await fs.mkdir(path.join(sandboxes, 'sandbox1'), { recursive: true });
    const res = await call('POST', '/sessions', { body: { executionId: 'exec-1', socketPath: socketPath(), policy: POLICY } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'invalid_socket_path', details: [expect.stringMatching(/^socketPath: /)] });
    expect(control.sessionCount).toBe(0);
  });

  it('refuses a sandbox directory that is a symlink to elsewhere', async () => {
    const outside = path.join(tmp, 'outside');
    await fs.mkdir(outside, { recursive: true });
    await fs.symlink(outside, path.join(sandboxes, 'linked'));
    const res = await call('POST', '/sessions', { body: { executionId: 'exec-2', socketPath: path.join(sandboxes, 'linked', 'proxy.sock'), policy: POLICY } });
    expect(res.status).toBe(400);
    expect(await fs.readdir(outside)).toEqual([]);
  });
});

describe('bad requests', () => {
  it('names the policy field that is wrong', async () => {
    const dir = await sandboxDir();
    const res = await call('POST', '/sessions', {
      body: { executionId: 'exec-3', socketPath: path.join(dir, 'proxy.sock'), policy: { ...POLICY, allowedDomains: ['exa*mple.com'] } },
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; details: string[] };
    expect(body.code).toBe('invalid_body');
    expect(body.details.join('\n')).toMatch(/^policy\.allowedDomains\.0: /m);
  });

  it('answers JSON that is not JSON with 400, and unknown routes with 404', async () => {
    expect((await call('POST', '/sessions', { body: '{' })).status).toBe(400);
    expect((await call('GET', '/nowhere')).status).toBe(404);
    expect((await call('DELETE', '/sessions/no-such-session')).status).toBe(404);
    expect((await call('DELETE', '/sessions/bad%20id')).status).toBe(400);
  });
});

describe('sessions', () => {
  it('opens a session that enforces the policy sent, and hands back its log', async () => {
    const dir = await sandboxDir();
    const socketPath = path.join(dir, 'proxy.sock');
    const opened = await call('POST', '/sessions', { body: { executionId: 'exec-4', socketPath, policy: POLICY } });
    expect(opened.status).toBe(201);
    expect((await fs.stat(socketPath)).isSocket()).toBe(true);
    expect(await fs.readFile(path.join(dir, 'ca.pem'), 'utf8')).toBe(proxy.caCertPem);

    const again = await call('POST', '/sessions', { body: { executionId: 'exec-4', socketPath: path.join(dir, 'other.sock'), policy: POLICY } });
    expect(again.status).toBe(409);

    const blocked = await request({ socketPath }, { method: 'DELETE', path: 'http://api.example.com/items/1', headers: { host: 'api.example.com' } });
    expect(blocked.statusCode).toBe(403);
    const elsewhere = await request({ socketPath }, { path: 'http://other.example.com/', headers: { host: 'other.example.com' } });
    expect(elsewhere.statusCode).toBe(403);

    const closed = await call('DELETE', '/sessions/exec-4');
    expect(closed.status).toBe(200);
    expect(await closed.json()).toEqual({
      capped: false,
      entries: [
        expect.objectContaining({ method: 'DELETE', url: 'http://api.example.com/items/1', blocked: true, reason: 'Method DELETE not allowed for api.example.com' }),
        expect.objectContaining({ method: 'GET', hostname: 'other.example.com', blocked: true, reason: 'Domain other.example.com is not in allowed list' }),
      ],
    });
    await expect(fs.stat(socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(control.sessionCount).toBe(0);
  });

  it('works through the client the API uses', async () => {
    const dir = await sandboxDir();
    const client = new ControlClient({ url, secret: SECRET });
    expect(await client.healthy()).toBe(true);
    expect(await client.caCertPem()).toBe(proxy.caCertPem);
    const session = await client.openSession({ executionId: 'exec-5', socketPath: path.join(dir, 'proxy.sock'), policy: DEFAULT_POLICY });
    const res = await request({ socketPath: path.join(dir, 'proxy.sock') }, { path: 'http://api.example.com/', headers: { host: 'api.example.com' } });
    expect(res.statusCode).toBe(403);
    const log = await session.close();
    expect(log.entries).toEqual([expect.objectContaining({ blocked: true, reason: 'Domain api.example.com is blocked by policy' })]);

    const wrong = new ControlClient({ url, secret: 'y'.repeat(40) });
    await expect(wrong.openSession({ executionId: 'exec-6', socketPath: path.join(dir, 'proxy.sock'), policy: DEFAULT_POLICY })).rejects.toMatchObject({
      name: 'ControlChannelError',
      status: 401,
      code: 'unauthorized',
    });
    const gone = new ControlClient({ url: 'http://127.0.0.1:1', secret: SECRET, timeoutMs: 1000 });
    const error = await gone.openSession({ executionId: 'exec-7', socketPath: path.join(dir, 'proxy.sock'), policy: DEFAULT_POLICY }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ControlChannelError);
    expect(error).toMatchObject({ status: 0, code: 'unreachable' });
    expect(await gone.healthy()).toBe(false);
  });

  it('closes a session the API abandoned after sessionMaxMs', async () => {
    const shortLived = new ControlServer({ proxy, secret: SECRET, sandboxesDir: sandboxes, sessionMaxMs: 100 });
    const shortUrl = await shortLived.listen(0, '127.0.0.1');
    try {
      const dir = await sandboxDir();
      const client = new ControlClient({ url: shortUrl, secret: SECRET });
      const session = await client.openSession({ executionId: 'exec-8', socketPath: path.join(dir, 'proxy.sock'), policy: DEFAULT_POLICY });
      await expect.poll(() => shortLived.sessionCount, { timeout: 5000 }).toBe(0);
      await expect(fs.stat(path.join(dir, 'proxy.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(session.close()).rejects.toMatchObject({ status: 404 });
    } finally {
      await shortLived.close();
    }
  });
});
