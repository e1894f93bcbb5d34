/**
 * The package closure and the captured relay through the real proxy, against
 * the loopback registry fixture (registry.npmjs.org, pypi.org and
 * files.pythonhosted.org mapped to it), which records every request: a
 * refused registry request never reaches it, and what the proxy holds for
 * the responses it reads stays within each session's budget.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CompiledPolicy } from '../policies/index.ts';
import { compilePolicy, policyFromApi, sessionPackagePolicy, WHEEL_TAIL_BYTES } from '../policies/index.ts';
import { NPM_HOST, PYPI_FILES_HOST, PYPI_HOST, startRegistry, type RegistryFixture } from '../test/fixtures/registry.ts';
import { connectTunnel, tlsOverTunnel } from '../test/fixtures/upstream-client.ts';
import { EgressProxy, ERROR_HEADER, parseHostMap } from './index.ts';
import type { CaptureLimits, EgressSession } from './index.ts';

const BIG = 8 * 1024 * 1024;
const POLICY = compilePolicy(policyFromApi({ allowedDomains: [], allowedPackages: ['tiny-app', 'pypi:tiny-py', 'pypi:big-py'] }));

let registry: RegistryFixture;
let dataDir: string;
const proxies: EgressProxy<CompiledPolicy>[] = [];
const sessions: EgressSession<CompiledPolicy>[] = [];
const sockets: tls.TLSSocket[] = [];
let seq = 0;

async function proxyWith(captureLimits: Partial<CaptureLimits> = {}): Promise<EgressProxy<CompiledPolicy>> {
  const packages = sessionPackagePolicy();
  const proxy = await EgressProxy.create<CompiledPolicy>({
    decide: packages.decide,
    learn: packages.learn,
    dataDir,
    hostMap: parseHostMap(registry.hostMapEnv()),
    upstreamCa: registry.caPem,
    captureLimits,
  });
  proxies.push(proxy);
  return proxy;
}

async function open(proxy: EgressProxy<CompiledPolicy>): Promise<EgressSession<CompiledPolicy>> {
  seq += 1;
  const s = await proxy.openSession({ executionId: `reg-${seq}`, socketPath: path.join(dataDir, 'sandboxes', `r${seq}`, 'proxy.sock'), context: POLICY });
  sessions.push(s);
  return s;
}

interface Exchange {
  statusCode: number;
  headers: http.IncomingHttpHeaders;
  res: http.IncomingMessage;
}

/** One GET over a fresh intercepted tunnel to `host`; the body is left unread for the caller. */
async function get(proxy: EgressProxy<CompiledPolicy>, s: EgressSession<CompiledPolicy>, host: string, target: string, headers: http.OutgoingHttpHeaders = {}): Promise<Exchange> {
  const tunnel = await connectTunnel(s.socketPath, `${host}:443`);
  expect(tunnel.statusCode).toBe(200);
  const stream = await tlsOverTunnel(tunnel.socket, host, proxy.caCertPem);
  sockets.push(stream);
  return new Promise((resolve, reject) => {
    const req = http.request({ method: 'GET', path: target, headers: { host, ...headers }, createConnection: () => stream });
    req.on('response', (res) => {
      res.pause();
      resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, res });
    });
    req.on('error', reject);
    req.end();
  });
}

function bodyOf(res: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks)));
    res.on('error', reject);
    res.resume();
  });
}

async function fetchBody(proxy: EgressProxy<CompiledPolicy>, s: EgressSession<CompiledPolicy>, host: string, target: string, headers: http.OutgoingHttpHeaders = {}) {
  const ex = await get(proxy, s, host, target, headers);
  return { ...ex, body: await bodyOf(ex.res) };
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting until ${what}`);
}

const pathOf = (url: string) => new URL(url).pathname;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const recorded = (p: string) => registry.requests.filter((r) => r.path === p).length;

/** Listed on tiny-py's simple page although it is another project's wheel. */
const FOREIGN_WHEEL = `https://${PYPI_FILES_HOST}/packages/aa/bb/cc/tiny_pyother-1.0-py3-none-any.whl`;

beforeAll(async () => {
  registry = await startRegistry(
    [
      { name: 'tiny-app', version: '1.2.0', dependencies: { 'tiny-dep': '^1.0.0' }, main: 'module.exports = 1;\n' },
      { name: 'tiny-dep', version: '1.0.0', main: 'module.exports = 2;\n' },
    ],
    [
      { name: 'tiny-py', version: '1.0', module: 'tiny_py', init: '', links: [FOREIGN_WHEEL, `https://${NPM_HOST}/tiny-dep/-/tiny-dep-1.0.0.tgz`] },
      { name: 'tiny-pydep', version: '1.0', module: 'tiny_pydep', init: '' },
      { name: 'big-py', version: '1.0', module: 'big_py', init: '', requires: ['tiny-pydep'], padding: BIG },
    ],
  );
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'egress-registry-test-'));
  // Building wheels with python3 and a CA takes a while on a busy machine.
}, 120_000);

afterEach(async () => {
  for (const t of sockets.splice(0)) t.destroy();
  await Promise.all(sessions.splice(0).map((s) => s.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});

afterAll(async () => {
  await registry?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

beforeEach(() => registry.reset());

describe('package closure refusals through the proxy', () => {
  it('refuses a fragment in a registry request before it reaches the registry, and logs why', async () => {
    const proxy = await proxyWith();
    const s = await open(proxy);
    const tunnel = await connectTunnel(s.socketPath, `${NPM_HOST}:443`);
    const stream = await tlsOverTunnel(tunnel.socket, NPM_HOST, proxy.caCertPem);
    sockets.push(stream);
    const answer = await new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
      stream.write(`GET /tiny-app#/../tiny-other HTTP/1.1\r\nHost: ${NPM_HOST}\r\nConnection: close\r\n\r\n`);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(registry.requests).toEqual([]);
    expect(s.networkLog().entries).toEqual([expect.objectContaining({ statusCode: 403, blocked: true, reason: 'A registry request must not carry a fragment ("#")' })]);
  });

  it('refuses plain HTTP to a registry before it reaches the registry, and logs why', async () => {
    const proxy = await proxyWith();
    const s = await open(proxy);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({ socketPath: s.socketPath, method: 'GET', path: `http://${NPM_HOST}/tiny-app`, headers: { host: NPM_HOST } });
      req.on('response', resolve);
      req.on('error', reject);
      req.end();
    });
    await bodyOf(res);
    expect(res.statusCode).toBe(403);
    expect(registry.requests).toEqual([]);
    expect(s.networkLog().entries).toEqual([expect.objectContaining({ statusCode: 403, blocked: true, reason: `Package registry ${NPM_HOST} is reached over HTTPS only` })]);
  });

  it('learns from a simple page only its own project\'s files on its own registry', async () => {
    const proxy = await proxyWith();
    const s = await open(proxy);
    const page = await fetchBody(proxy, s, PYPI_HOST, '/simple/tiny-py/');
    expect(page.statusCode).toBe(200);
    const html = page.body.toString('utf8');
    const otherWheel = FOREIGN_WHEEL;
    expect(html).toContain(otherWheel);
    expect(html).toContain('tiny-dep-1.0.0.tgz');
    registry.reset();

    const ownWheel = await fetchBody(proxy, s, PYPI_FILES_HOST, pathOf(registry.wheelUrl('tiny-py')));
    expect(ownWheel.statusCode).toBe(200);
    const foreign = await fetchBody(proxy, s, PYPI_FILES_HOST, pathOf(otherWheel));
    const npmFile = await fetchBody(proxy, s, NPM_HOST, '/tiny-dep/-/tiny-dep-1.0.0.tgz');
    expect([foreign.statusCode, npmFile.statusCode]).toEqual([403, 403]);
    expect(registry.requests.map((r) => r.path)).toEqual([pathOf(registry.wheelUrl('tiny-py'))]);
    const reasons = s.networkLog().entries.filter((e) => e.blocked).map((e) => e.reason);
    expect(reasons).toEqual([
      `${pathOf(otherWheel)} on ${PYPI_FILES_HOST} is not a file of an allowed package`,
      `/tiny-dep/-/tiny-dep-1.0.0.tgz on ${NPM_HOST} is not a file of an allowed package`,
    ]);
  });
});

describe('captured registry responses', () => {
  /** Lists big-py's wheel in the session's closure; returns its path. */
  async function listBig(proxy: EgressProxy<CompiledPolicy>, s: EgressSession<CompiledPolicy>): Promise<string> {
    const page = await fetchBody(proxy, s, PYPI_HOST, '/simple/big-py/', { accept: 'application/vnd.pypi.simple.v1+json' });
    expect(page.statusCode).toBe(200);
    registry.reset();
    return pathOf(registry.wheelUrl('big-py'));
  }

  it('streams a large wheel, holding only its tail, and learns its dependencies from that tail', async () => {
    const proxy = await proxyWith();
    const s = await open(proxy);
    const wheel = await listBig(proxy, s);
    const got = await fetchBody(proxy, s, PYPI_FILES_HOST, wheel);
    expect(got.statusCode).toBe(200);
    expect(got.body.length).toBeGreaterThan(BIG);
    expect(sha256(got.body)).toBe(wheel.split('/').slice(2, 5).join(''));
    expect(proxy.captureStats().peakHeldBytes).toBeLessThan(WHEEL_TAIL_BYTES + 1024 * 1024);
    expect(proxy.captureStats()).toMatchObject({ heldBytes: 0, captures: 0 });
    // big-py's METADATA (read from the tail) requires tiny-pydep.
    expect((await fetchBody(proxy, s, PYPI_HOST, '/simple/tiny-pydep/')).statusCode).toBe(200);
  });

  it('holds bounded memory for slow readers of large wheels, and gives it all back', async () => {
    const readers = 4;
    const proxy = await proxyWith({ sessionCaptures: readers });
    const s = await open(proxy);
    const wheel = await listBig(proxy, s);
    const slow = await Promise.all(Array.from({ length: readers }, () => get(proxy, s, PYPI_FILES_HOST, wheel)));
    expect(slow.map((x) => x.statusCode)).toEqual(Array(readers).fill(200));
    // Every reader has been sent all it will be sent before reading: what the proxy still holds is bounded by the tails.
    await eventually(() => proxy.captureStats().captures === readers && proxy.captureStats().heldBytes >= readers * WHEEL_TAIL_BYTES, 'every capture holds its tail');
    const held = proxy.captureStats().heldBytes;
    expect(held).toBeLessThan(readers * (WHEEL_TAIL_BYTES + 1024 * 1024));
    expect(held).toBeLessThan(readers * BIG);
    const bodies = await Promise.all(slow.map((x) => bodyOf(x.res)));
    for (const b of bodies) expect(sha256(b)).toBe(wheel.split('/').slice(2, 5).join(''));
    await eventually(() => proxy.captureStats().captures === 0, 'every capture has ended');
    expect(proxy.captureStats().heldBytes).toBe(0);
  });

  it('answers 503 past the captures a session may have in flight, without asking the registry, and logs why', async () => {
    const proxy = await proxyWith({ sessionCaptures: 2 });
    const s = await open(proxy);
    const wheel = await listBig(proxy, s);
    const slow = await Promise.all([get(proxy, s, PYPI_FILES_HOST, wheel), get(proxy, s, PYPI_FILES_HOST, wheel)]);
    expect(slow.map((x) => x.statusCode)).toEqual([200, 200]);
    const refused = await fetchBody(proxy, s, PYPI_FILES_HOST, wheel);
    expect(refused.statusCode).toBe(503);
    expect(refused.headers[ERROR_HEADER.toLowerCase()]).toBe('capture-budget');
    expect(refused.headers['retry-after']).toBe('1');
    expect(recorded(wheel)).toBe(2);
    const entry = s.networkLog().entries.find((e) => e.statusCode === 503);
    expect(entry).toMatchObject({ blocked: false, reason: expect.stringContaining('already has 2 registry responses being read') });
    // Another session has its own budget.
    const other = await open(proxy);
    await listBig(proxy, other);
    expect((await fetchBody(proxy, other, PYPI_HOST, '/simple/tiny-py/')).statusCode).toBe(200);
    await Promise.all(slow.map((x) => bodyOf(x.res)));
    await eventually(() => proxy.captureStats().captures === 0, 'the slow captures have ended');
    expect((await fetchBody(proxy, s, PYPI_FILES_HOST, wheel)).statusCode).toBe(200);
  });

  it('answers 503 when a capture would take the session past its bytes, and logs why', async () => {
    const proxy = await proxyWith({ sessionBytes: WHEEL_TAIL_BYTES + 1024 * 1024 });
    const s = await open(proxy);
    const wheel = await listBig(proxy, s);
    const first = await get(proxy, s, PYPI_FILES_HOST, wheel);
    expect(first.statusCode).toBe(200);
    await eventually(() => proxy.captureStats().heldBytes >= WHEEL_TAIL_BYTES, 'the first capture holds its tail');
    // The second needs a whole tail before it can answer anything: past the budget, so 503 before any byte of it is sent.
    const second = await fetchBody(proxy, s, PYPI_FILES_HOST, wheel);
    expect(second.statusCode).toBe(503);
    expect(JSON.parse(second.body.toString('utf8'))).toMatchObject({ error: 'proxy busy', reason: expect.stringContaining('would hold more than') });
    expect(s.networkLog().entries.find((e) => e.statusCode === 503)).toMatchObject({ reason: expect.stringContaining('would hold more than') });
    expect(sha256(await bodyOf(first.res))).toBe(wheel.split('/').slice(2, 5).join(''));
  });
});
