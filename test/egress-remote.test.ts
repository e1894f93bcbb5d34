/**
 * The compose deployment's shape on one machine: the API with
 * EGRESS_MODE=remote and the egress proxy as its own process (no Docker
 * access), sharing only the sandboxes directory and a secret. The seed
 * scenarios must come out exactly as with the in-process proxy.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { DockerContainerClient, LABEL_INSTANCE, LABEL_MANAGED } from '../executor/index.ts';
import { instanceIdFor } from '../server/service.ts';
import { describeWithDocker } from './support/docker.ts';
import { freePort, startEgressServiceProcess, type EgressServiceProcess } from './support/egress-service.ts';
import { expectSeedScenario, SEED_POLICY_INFO } from './support/seed-expectations.ts';
import { hostMapEnv, SEED_HOSTS, startSeedWorld, type SeedWorld } from './support/seed-world.ts';


const SECRET = 'remote-egress-test-secret-0123456789';

describeWithDocker('the egress proxy as its own service', () => {
  let world: SeedWorld;
  let proxy: EgressServiceProcess | undefined;
  let proxyDir: string;
  let controlUrl: string;
  let sandboxesDir: string;

  async function startProxy(): Promise<EgressServiceProcess> {
    return startEgressServiceProcess({
      EGRESS_CONTROL_PORT: new URL(controlUrl).port,
      EGRESS_CONTROL_SECRET: SECRET,
      DATA_DIR: join(proxyDir, 'data'),
      EGRESS_SANDBOXES_DIR: sandboxesDir,
      EGRESS_HOST_MAP: hostMapEnv(world.upstream, SEED_HOSTS),
      EGRESS_UPSTREAM_CA: join(proxyDir, 'upstream-ca.pem'),
    });
  }

  beforeAll(async () => {
    proxyDir = await mkdtemp(join(tmpdir(), 'egress-service-'));
    // The API must be told where the proxy listens before the proxy exists (compose names it by service).
    controlUrl = `http://127.0.0.1:${await freePort()}`;
    world = await startSeedWorld({
      EGRESS_MODE: 'remote',
      EGRESS_CONTROL_URL: controlUrl,
      EGRESS_CONTROL_SECRET: SECRET,
      // Exact container accounting below; the pool's interplay with sessions is the pool's own test.
      EXEC_POOL_SIZE: '0',
    });
    sandboxesDir = join(world.service.dataDir, 'sandboxes');
    await writeFile(join(proxyDir, 'upstream-ca.pem'), world.upstream.caPem);
  });
  afterAll(async () => {
    await proxy?.stop();
    await world?.close();
    await rm(proxyDir, { recursive: true, force: true });
  });
  beforeEach(() => {
    world.upstream.reset();
  });

  it('reports the missing proxy in /readyz, and is ready once it answers', async () => {
    const before = await fetch(`${world.service.url}/readyz`);
    expect(before.status).toBe(503);
    expect(((await before.json()) as any).checks.egress).toBe('egress proxy not answering');

    proxy = await startProxy();
    const after = await fetch(`${world.service.url}/readyz`);
    expect(((await after.json()) as any).checks.egress).toBe('ok');
  });

  it('Test 2: an allowed HTTPS GET reaches api.stripe.com through the remote proxy', async () => {
    const data = await world.run({
      code: 'const https = require("https"); https.get("https://api.stripe.com/v1/products", r => console.log(r.statusCode));',
    });
    expectSeedScenario('stripeGet', data, world.upstream);
    expect(data.code).toBe(0);
    expect(data.policyInfo).toEqual(SEED_POLICY_INFO);
  });

  it('Test 3: DELETE on *.okta.com is blocked with a readable 403 by the remote proxy', async () => {
    const data = await world.run({
      code: 'const https = require("https"); https.request({ hostname: "dev-123.okta.com", path: "/api/v1/users/123", method: "DELETE" }, r => console.log(r.statusCode)).end();',
    });
    expectSeedScenario('oktaDelete', data, world.upstream);
    expect(data.code).toBe(0);
  });

  it('really went through the separate process: its CA and sessions, none in the API', async () => {
    // The in-process proxy would have made a CA in the API's DATA_DIR.
    await expect(stat(join(world.service.dataDir, 'ca'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await stat(join(proxyDir, 'data', 'ca', 'ca.pem'))).isFile()).toBe(true);
    const closed = proxy!.logLines.filter((line) => line.msg === 'egress session closed');
    expect(closed.length).toBeGreaterThanOrEqual(2);
  });

  it("counts the remote proxy's decisions on the proxy service's own /metrics, by result and reason", async () => {
    const metric = async (labels: string) => {
      const text = await (await fetch(`${proxy!.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith(`sandbox_egress_decisions_total${labels} `));
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    const allowed = '{result="allowed",reason="allowedDomains"}';
    const blocked = '{result="blocked",reason="apiPathRules"}';
    const before = { allowed: await metric(allowed), blocked: await metric(blocked) };
    // Tests 2 and 3 above went through this process; one more of each, counted exactly.
    expect(before.allowed).toBeGreaterThan(0);
    expect(before.blocked).toBeGreaterThan(0);
    await world.run({ code: 'const https = require("https"); https.get("https://api.stripe.com/v1/products", r => console.log(r.statusCode));' });
    await world.run({
      code: 'const https = require("https"); https.request({ hostname: "dev-123.okta.com", path: "/api/v1/users/123", method: "DELETE" }, r => console.log(r.statusCode)).end();',
    });
    expect(await metric(allowed)).toBe(before.allowed + 1);
    expect(await metric(blocked)).toBe(before.blocked + 1);
    // The API, in remote mode, sees no decision at all.
    expect(await (await fetch(`${world.service.url}/metrics`)).text()).not.toMatch(/^sandbox_egress_decisions_total\{/mu);
  });

  it('refuses a wrong secret with 401 and a socket path outside the sandboxes directory with 400', async () => {
    const outside = join(proxyDir, 'outside', 'box');
    await mkdir(outside, { recursive: true });
    const open = (secret: string, socketPath: string) =>
      fetch(`${proxy!.url}/sessions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
        body: JSON.stringify({ executionId: 'intruder', socketPath, policy: { allowedDomains: ['*'], blockedDomains: [], apiPathRules: {}, allowedPackages: [], allowedBinaries: [] } }),
      });

    const wrong = await open(`${SECRET.slice(0, -1)}x`, join(sandboxesDir, 'box', 'proxy.sock'));
    expect(wrong.status).toBe(401);

    for (const socketPath of [join(outside, 'proxy.sock'), `${sandboxesDir}/../../${outside.split('/').slice(-3).join('/')}/proxy.sock`]) {
      const res = await open(SECRET, socketPath);
      expect(res.status, socketPath).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'invalid_socket_path' });
    }
    await expect(stat(join(outside, 'proxy.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('answers 503 with Retry-After when the proxy service is down, and leaves no container', async () => {
    expect(await proxy!.stop()).toBe(0);
    proxy = undefined;
    const response = await world.service.post('/execute', { code: 'console.log(1)' }, { authorization: `Bearer ${world.token}` });
    expect(response.status).toBe(503);
    expect(response.json).toMatchObject({ success: false, code: 'EGRESS_UNAVAILABLE' });
    expect(response.headers.get('retry-after')).toBe('5');
    // The sandbox is removed after the answer goes out.
    const ours = { [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instanceIdFor(world.service.dataDir) };
    await expect.poll(() => new DockerContainerClient().listLabelled(ours), { timeout: 15_000 }).toEqual([]);
  });
});
