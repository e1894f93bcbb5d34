/**
 * Credentials that never enter the sandbox, end to end: the HTTP API, the
 * real engine and images, the real proxy (in this process or as its own
 * service) and loopback HTTPS stand-ins for api.stripe.com (answers 200 only
 * to the real key, echoes what it got, reflects the key on request) and
 * api.github.com (records everything). Shared by the in-process and the
 * remote suite, so both prove the same contract.
 */
import { execFile } from 'node:child_process';
import type { ServerResponse } from 'node:http';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LABEL_MANAGED } from '../../executor/index.ts';
import type { RecordedRequest } from '../fixtures/upstream.ts';
import { freePort, startEgressServiceProcess, type EgressServiceProcess } from './egress-service.ts';
import { hostMapEnv, SEED_HOSTS, startSeedWorld, type SeedWorld } from './seed-world.ts';

const run = promisify(execFile);

/** A key with a quote and a backslash: its JSON-escaped form differs from the key itself. */
export const STRIPE_KEY = 'sk_test_4eC39HqLy"jWDarjt\\T1zdp7dc';
const QUERY_KEY = 'sk_query_Zq81mWv0Lr5TnB2x';
const BODY_KEY = 'sk_body_Hx93kPq2Lw7Ys4Vn';
/** Held by the policy source: the caller never sends it. */
const VAULT_KEY = 'sk_vault_P0l1cyHeldV4lue9';
/** The key of the README's example. */
const README_KEY = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc';
const ALL_VALUES = [STRIPE_KEY, QUERY_KEY, BODY_KEY, VAULT_KEY, README_KEY];

const USER = 'credential-user';
const CONTROL_SECRET = 'credential-suite-control-secret-0123456789';

export const CREDENTIAL_POLICY = {
  allowedDomains: ['api.stripe.com', 'api.github.com'],
  secrets: {
    STRIPE_KEY: { hosts: ['api.stripe.com'] },
    STRIPE_QUERY_KEY: { hosts: ['api.stripe.com'], in: ['query'] },
    STRIPE_BODY_KEY: { hosts: ['api.stripe.com'], in: ['body'] },
    VAULT_KEY: { hosts: ['api.stripe.com'], value: VAULT_KEY },
  },
};

const hostOf = (record: RecordedRequest): string => String(record.headers.host ?? '').replace(/:\d+$/, '');

/** The stand-in Stripe: 200 only to a real key, echoing headers, query and body; /reflect/* sends the key back. */
function standIns(release: { go: boolean }) {
  return (record: RecordedRequest, res: ServerResponse): boolean => {
    const url = new URL(record.path, 'https://x');
    if (hostOf(record) === 'api.github.com') {
      if (url.pathname !== '/release') return false;
      res.end(release.go ? 'go' : 'wait');
      return true;
    }
    if (hostOf(record) !== 'api.stripe.com') return false;
    const auth = String(record.headers.authorization ?? '');
    const basic = /^Basic (.+)$/.exec(auth);
    const password = basic === null ? null : Buffer.from(basic[1] ?? '', 'base64').toString('utf8').split(':').slice(1).join(':');
    let bodyKey: unknown;
    try {
      bodyKey = (JSON.parse(record.body) as { key?: unknown }).key;
    } catch {
      bodyKey = undefined;
    }
    const authorized =
      auth === `Bearer ${STRIPE_KEY}` || auth === `Bearer ${VAULT_KEY}` || auth === `Bearer ${README_KEY}` || password === STRIPE_KEY || url.searchParams.get('key') === QUERY_KEY || bodyKey === BODY_KEY;
    if (!authorized) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid api key"}');
      return true;
    }
    switch (url.pathname) {
      case '/reflect/header':
        res.writeHead(200, { 'x-echo-key': STRIPE_KEY }).end('ok');
        return true;
      case '/reflect/gzip':
        res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' }).end(gzipSync(`your key is ${STRIPE_KEY}`));
        return true;
      case '/reflect/base64':
        res.writeHead(200, { 'content-type': 'text/plain' }).end(Buffer.from(STRIPE_KEY).toString('base64'));
        return true;
      case '/reflect/json':
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ key: STRIPE_KEY }));
        return true;
      case '/reflect/unknown-encoding':
        res.writeHead(200, { 'content-encoding': 'x-custom' }).end(STRIPE_KEY);
        return true;
      default:
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ headers: record.headers, query: url.search, body: record.body }));
        return true;
    }
  };
}

/** Node: every scenario in one execution; each result printed reversed, so the service's own output scrub cannot hide a leak. */
const NODE_SCENARIOS = `
const https = require('https');
const { STRIPE_KEY: k, STRIPE_QUERY_KEY: q, STRIPE_BODY_KEY: b, VAULT_KEY: v } = process.env;
const rev = (s) => s.split('').reverse().join('');
// A kept-alive tunnel the proxy closes as idle just as it is reused resets: asked again once, on a new one.
const call = (url, options = {}, retried = false) => new Promise((resolve) => {
  const { method = 'GET', headers = {}, body } = options;
  const req = https.request(url, { method, headers }, (r) => {
    const chunks = [];
    r.on('data', (c) => chunks.push(c));
    r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body: Buffer.concat(chunks).toString('utf8') }));
  });
  req.on('error', (e) => resolve(e.code === 'ECONNRESET' && !retried ? call(url, options, true) : { status: e.code, headers: {}, body: '' }));
  if (body !== undefined) req.write(body);
  req.end();
});
const S = 'https://api.stripe.com', G = 'https://api.github.com';
const bearer = (x) => ({ authorization: 'Bearer ' + x });
const basic = (x) => ({ authorization: 'Basic ' + Buffer.from('user:' + x).toString('base64') });
const json = (o) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(o) });
const scenarios = {
  stripeHeader: [S + '/v1/charges', { headers: bearer(k) }],
  stripeBasic: [S + '/v1/charges', { headers: basic(k) }],
  stripeQuery: [S + '/v1/charges?key=' + q],
  stripeBody: [S + '/v1/charges', json({ key: b })],
  vault: [S + '/v1/charges', { headers: bearer(v) }],
  githubHeader: [G + '/user', { headers: bearer(k) }],
  githubQuery: [G + '/search?q=' + k],
  githubBody: [G + '/gists', json({ key: b })],
  githubPath: [G + '/repos/' + k],
  queryNotAllowed: [S + '/v1/charges?key=' + k],
  pathNotAllowed: [S + '/v1/customers/' + k],
  basicNotAllowed: [S + '/v1/charges', { headers: basic(q) }],
  bodyNotAllowed: [S + '/v1/charges', json({ key: k })],
  reflectHeader: [S + '/reflect/header', { headers: bearer(k) }],
  reflectGzip: [S + '/reflect/gzip', { headers: { ...bearer(k), 'accept-encoding': 'gzip' } }],
  reflectBase64: [S + '/reflect/base64', { headers: bearer(k) }],
  reflectJson: [S + '/reflect/json', { headers: bearer(k) }],
  unscrubbable: [S + '/reflect/unknown-encoding', { headers: bearer(k) }],
};
(async () => {
  const out = {};
  for (const [name, [url, options]] of Object.entries(scenarios)) {
    const r = await call(url, options);
    let reason = null;
    try { reason = JSON.parse(r.body).reason ?? null; } catch {}
    out[name] = { status: r.status, reason, rev: rev(JSON.stringify({ headers: r.headers, body: r.body })) };
  }
  console.log(JSON.stringify(out));
})();
`;

const PYTHON_PROGRAM = `
import json, os, requests
r = requests.get("https://api.stripe.com/v1/charges", headers={"Authorization": "Bearer " + os.environ["STRIPE_KEY"]})
print(json.dumps({"status": r.status_code, "rev": r.text[::-1]}))
`;

/** Waits for the proxy's go, so the sandbox can be inspected while it runs. */
const WAITING_PROGRAM = `
(async () => {
  for (;;) {
    const r = await fetch('https://api.github.com/release');
    if ((await r.text()) === 'go') break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log(process.env.STRIPE_KEY.startsWith('sbx_secret_STRIPE_KEY_'));
})();
`;

const unreverse = (text: string): string => text.split('').reverse().join('');
const placeholderOf = (name: string): RegExp => new RegExp(`sbx_secret_${name}_[0-9A-Za-z]{24}`);

function expectNoValue(text: string): void {
  for (const value of ALL_VALUES) {
    expect(text).not.toContain(value);
    expect(text).not.toContain(JSON.stringify(value).slice(1, -1));
    expect(text).not.toContain(Buffer.from(value).toString('base64').slice(0, 16));
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await filesUnder(full)));
    else if (entry.isFile()) found.push(full);
  }
  return found;
}

async function eventually<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let attempt = 0; attempt < 600; attempt += 1) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`never happened: ${what}`);
}

export function describeCredentialSuite(mode: 'in-process' | 'remote'): void {
  describe(`credentials that never enter the sandbox (${mode} proxy)`, () => {
    let world: SeedWorld;
    let token: string;
    let proxy: EgressServiceProcess | undefined;
    let proxyDir: string | undefined;
    const release = { go: false };

    beforeAll(async () => {
      const controlUrl = `http://127.0.0.1:${await freePort()}`;
      const remote: Record<string, string> = mode === 'remote' ? { EGRESS_MODE: 'remote', EGRESS_CONTROL_URL: controlUrl, EGRESS_CONTROL_SECRET: CONTROL_SECRET } : {};
      world = await startSeedWorld({ ...remote, EXEC_POOL_SIZE: '0' }, { users: () => ({ [USER]: CREDENTIAL_POLICY }), respond: standIns(release) });
      token = await world.tokenFor(USER);
      if (mode === 'remote') {
        proxyDir = await mkdtemp(join(tmpdir(), 'credential-proxy-'));
        await writeFile(join(proxyDir, 'upstream-ca.pem'), world.upstream.caPem);
        proxy = await startEgressServiceProcess({
          EGRESS_CONTROL_PORT: new URL(controlUrl).port,
          EGRESS_CONTROL_SECRET: CONTROL_SECRET,
          DATA_DIR: join(proxyDir, 'data'),
          EGRESS_SANDBOXES_DIR: join(world.service.dataDir, 'sandboxes'),
          EGRESS_HOST_MAP: hostMapEnv(world.upstream, SEED_HOSTS),
          EGRESS_UPSTREAM_CA: join(proxyDir, 'upstream-ca.pem'),
        });
      }
    });
    afterAll(async () => {
      await proxy?.stop();
      await world?.close();
      if (proxyDir !== undefined) await rm(proxyDir, { recursive: true, force: true });
    });
    beforeEach(() => {
      world.upstream.reset();
    });

    const execute = (body: Record<string, unknown>, headers: Record<string, string> = {}, bearer: string | null = token) =>
      world.service.post('/execute', body, { ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }), ...headers });

    it('substitutes toward Stripe, refuses everywhere else, and scrubs every reflection (Node https)', async () => {
      const response = await execute({ code: NODE_SCENARIOS, secrets: { STRIPE_KEY, STRIPE_QUERY_KEY: QUERY_KEY, STRIPE_BODY_KEY: BODY_KEY } });
      expect(response.status).toBe(200);
      expectNoValue(response.text);
      const data = response.json.data;
      expect(data.stderr).toBe('');
      const out = JSON.parse(data.stdout) as Record<string, { status: number; reason: string | null; rev: string }>;
      const seen = (name: string): string => unreverse(out[name]?.rev ?? '');
      for (const name of Object.keys(out)) expectNoValue(seen(name));

      // Toward Stripe, in the places `in` allows: the real key arrived, the program saw only its placeholder.
      for (const name of ['stripeHeader', 'stripeBasic', 'stripeQuery', 'stripeBody', 'vault']) expect(out[name]?.status, name).toBe(200);
      expect(seen('stripeHeader')).toMatch(placeholderOf('STRIPE_KEY'));
      expect(seen('stripeQuery')).toMatch(placeholderOf('STRIPE_QUERY_KEY'));
      expect(seen('stripeBody')).toMatch(placeholderOf('STRIPE_BODY_KEY'));
      expect(seen('vault')).toMatch(placeholderOf('VAULT_KEY'));
      const stripe = world.upstream.requests.filter((r) => hostOf(r) === 'api.stripe.com');
      expect(stripe.some((r) => r.headers.authorization === `Bearer ${STRIPE_KEY}`)).toBe(true);
      expect(stripe.some((r) => r.headers.authorization === `Basic ${Buffer.from(`user:${STRIPE_KEY}`).toString('base64')}`)).toBe(true);
      expect(stripe.some((r) => r.path === `/v1/charges?key=${QUERY_KEY}`)).toBe(true);
      expect(stripe.some((r) => r.body === JSON.stringify({ key: BODY_KEY }))).toBe(true);
      expect(stripe.some((r) => r.headers.authorization === `Bearer ${VAULT_KEY}`)).toBe(true);

      // Anywhere else: 403 with the reason, and nothing forwarded.
      expect(out.githubHeader).toMatchObject({ status: 403, reason: 'Secret STRIPE_KEY may not be sent to api.github.com' });
      expect(out.githubQuery).toMatchObject({ status: 403, reason: 'Secret STRIPE_KEY may not be sent to api.github.com' });
      expect(out.githubBody).toMatchObject({ status: 403, reason: 'Secret STRIPE_BODY_KEY may not be sent to api.github.com' });
      expect(out.githubPath).toMatchObject({ status: 403, reason: 'Secret STRIPE_KEY may not be sent to api.github.com' });
      expect(out.pathNotAllowed).toMatchObject({ status: 403, reason: 'Secret STRIPE_KEY may not be sent to api.stripe.com in the path' });
      expect(world.upstream.requests.filter((r) => hostOf(r) === 'api.github.com')).toEqual([]);
      expect(out.queryNotAllowed).toMatchObject({ status: 403, reason: 'Secret STRIPE_KEY may not be sent to api.stripe.com in the query' });
      expect(out.basicNotAllowed?.status).toBe(403);
      expect(out.basicNotAllowed?.reason).toMatch(/^Secret STRIPE_QUERY_KEY may not be sent to api\.stripe\.com in a header/);
      expect(out.bodyNotAllowed).toMatchObject({ status: 403, reason: 'Secret STRIPE_KEY may not be sent to api.stripe.com in the body' });
      expect(stripe.filter((r) => r.path.includes('sbx_secret_') || r.path.startsWith('/v1/customers/') || r.body.includes(STRIPE_KEY))).toEqual([]);

      // Reflections come back as placeholders: in a header, a gzip body, a base64 body, a JSON-escaped body.
      for (const name of ['reflectHeader', 'reflectGzip', 'reflectBase64', 'reflectJson']) {
        expect(out[name]?.status, name).toBe(200);
      }
      expect(seen('reflectHeader')).toMatch(placeholderOf('STRIPE_KEY'));
      expect(seen('reflectGzip')).toMatch(placeholderOf('STRIPE_KEY'));
      expect(seen('reflectJson')).toMatch(placeholderOf('STRIPE_KEY'));
      expect(Buffer.from(JSON.parse(seen('reflectBase64')).body as string, 'base64').toString('utf8')).toMatch(placeholderOf('STRIPE_KEY'));
      expect(out.unscrubbable?.status).toBe(502);
      expect(out.unscrubbable?.reason).toMatch(/cannot scrub/);

      // Visible, never revealed: each log entry names what was substituted.
      const log = data.networkLog as Array<{ url: string; statusCode: number; blocked: boolean; secrets?: string[] }>;
      expectNoValue(JSON.stringify(log));
      expect(log.find((e) => e.url === 'https://api.stripe.com/v1/charges' && e.secrets?.includes('STRIPE_KEY'))).toBeDefined();
      expect(log.filter((e) => e.secrets?.includes('STRIPE_BODY_KEY'))).toHaveLength(1);
      expect(log.filter((e) => e.url.startsWith('https://api.github.com')).every((e) => e.blocked && e.statusCode === 403 && e.secrets === undefined)).toBe(true);
    });

    it('works the same for Python requests, with the key sent as an X-Secret-* header', async () => {
      const response = await execute({ code: PYTHON_PROGRAM, language: 'python' }, { 'X-Secret-Stripe-Key': STRIPE_KEY });
      expect(response.status).toBe(200);
      expectNoValue(response.text);
      const out = JSON.parse(response.json.data.stdout) as { status: number; rev: string };
      expect(out.status).toBe(200);
      expect(unreverse(out.rev)).toMatch(placeholderOf('STRIPE_KEY'));
      expect(world.upstream.requests.some((r) => r.headers.authorization === `Bearer ${STRIPE_KEY}`)).toBe(true);
    });

    it.skipIf(mode === 'remote')('runs the README\'s credential example as printed', async () => {
      const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
      const printed = /-d '(\{"language": "python", "secrets".*)'\n/.exec(readme)?.[1];
      expect(printed).toBeDefined();
      const response = await execute(JSON.parse(printed ?? '{}') as Record<string, unknown>);
      expect(response.status).toBe(200);
      expect(response.json.data).toMatchObject({ stdout: '200\n', stderr: '' });
      expect(response.json.data.networkLog).toEqual([expect.objectContaining({ url: 'https://api.stripe.com/v1/products', statusCode: 200, secrets: ['STRIPE_KEY'] })]);
      expect(world.upstream.requests.some((r) => r.headers.authorization === `Bearer ${README_KEY}`)).toBe(true);
    });

    it('puts the key nowhere the sandbox or an observer can read it: docker inspect, the egress directory, /metrics', async () => {
      release.go = false;
      const running = execute({ code: WAITING_PROGRAM, secrets: { STRIPE_KEY } });
      await eventually(() => Promise.resolve(world.upstream.requests.some((r) => r.path === '/release') ? true : undefined), 'the program asks for its release');
      const { stdout: ids } = await run('docker', ['ps', '-q', '--filter', `label=${LABEL_MANAGED}`]);
      expect(ids.trim()).not.toBe('');
      const { stdout: inspected } = await run('docker', ['inspect', ...ids.trim().split(/\s+/)], { maxBuffer: 64 * 1024 * 1024 });
      expectNoValue(inspected);
      const files = await filesUnder(join(world.service.dataDir, 'sandboxes'));
      expect(files.length).toBeGreaterThan(0);
      for (const file of files) {
        if ((await stat(file)).size < 16 * 1024 * 1024) expectNoValue(await readFile(file, 'utf8'));
      }
      release.go = true;
      const response = await running;
      expect(response.status).toBe(200);
      expect(response.json.data.stdout).toBe('true\n');
      const metrics = await (await fetch(`${world.service.url}/metrics`)).text();
      expectNoValue(metrics);
    });

    it('keeps a value the policy source holds out of GET /api/user/policies', async () => {
      const response = await fetch(`${world.service.url}/api/user/policies`, { headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(200);
      const text = await response.text();
      expectNoValue(text);
      expect(JSON.parse(text).secrets.VAULT_KEY).toEqual({ hosts: ['api.stripe.com'], valueFromPolicy: true });
    });

    it('refuses bad secrets with a 400 naming the field, before any sandbox exists', async () => {
      const assigned = () => world.service.logLines.filter((line) => line.msg === 'sandbox assigned').length;
      const before = assigned();
      const big = 'x'.repeat(8 * 1024 + 1);
      const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`EXTRA_${i}`, { value: `value-${i}-0123456789`, hosts: ['api.stripe.com'] }]));
      const cases: Array<[Record<string, unknown>, string | null, string, string]> = [
        [{ secrets: { UNKNOWN_KEY: 'sk_unknown_0123456789' } }, token, 'SECRET_NOT_DECLARED', 'secrets.UNKNOWN_KEY'],
        [{ secrets: { OTHER_KEY: { value: 'sk_other_0123456789', hosts: ['evil.example.com'] } } }, token, 'SECRET_HOST_NOT_ALLOWED', 'secrets.OTHER_KEY.hosts'],
        [{ secrets: { STRIPE_KEY } }, null, 'SECRET_WITHOUT_POLICY', 'secrets'],
        [{ secrets: many }, token, 'SECRET_LIMIT', 'secrets'],
        [{ secrets: { STRIPE_KEY: big } }, token, 'SECRET_TOO_LARGE', 'secrets.STRIPE_KEY'],
        [{ secrets: { STRIPE_KEY }, env: { STRIPE_KEY: 'plain' } }, token, 'SECRET_ALSO_IN_ENV', 'env.STRIPE_KEY'],
      ];
      for (const [body, bearer, code, field] of cases) {
        const response = await execute({ code: 'console.log(1)', ...body }, {}, bearer);
        expect(response.status, code).toBe(400);
        expect(response.json.code).toBe(code);
        expect((response.json.details as Array<{ field: string }>).map((d) => d.field)).toContain(field);
        expectNoValue(response.text);
        expect(response.text).not.toContain(big);
      }
      expect(assigned()).toBe(before);
    });

    it('never writes a value to the service log (nor the proxy service log)', () => {
      expect(world.service.logLines.some((line) => line.msg === 'execution' && Array.isArray(line.secrets))).toBe(true);
      expect(world.service.logLines.some((line) => Array.isArray(line.secrets) && (line.secrets as string[]).includes('STRIPE_KEY') && line.msg !== 'execution')).toBe(
        mode === 'in-process',
      );
      expectNoValue(JSON.stringify(world.service.logLines));
      if (proxy !== undefined) {
        expect(proxy.logLines.some((line) => Array.isArray(line.secrets))).toBe(true);
        expectNoValue(JSON.stringify(proxy.logLines));
      }
    });
  });
}
