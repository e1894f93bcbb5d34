/**
 * The warm pool through the real service and engine: pooled sandboxes run
 * one job each and are gone afterwards, the pool refills, egress is attached
 * only at assignment, size 0 means the cold path, and nothing outlives close.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CA_CERT_FILE, DockerContainerClient, LABEL_INSTANCE, LABEL_MANAGED, LABEL_POOL, poolKey, PROXY_SOCKET_FILE } from '../executor/index.ts';
import { instanceIdFor } from '../server/service.ts';
import { describeWithDocker, untilProgramWaits } from './support/docker.ts';
import { expectSeedScenario } from './support/seed-expectations.ts';
import { startSeedWorld, type SeedWorld } from './support/seed-world.ts';
import { startTestService, testIsolation, type TestService } from './support/service.ts';

const docker = new DockerContainerClient();

const ours = (service: TestService) => ({ [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instanceIdFor(service.dataDir) });
const pooledIds = (service: TestService) => docker.listLabelled({ ...ours(service), [LABEL_POOL]: poolKey('node', testIsolation()) });

/** The container the service assigned to an execution, from its log. */
function containerOf(service: TestService, executionId: string): string {
  const line = service.logLines.find((l) => l.msg === 'sandbox assigned' && l.executionId === executionId);
  expect(line, `no assignment logged for ${executionId}`).toBeDefined();
  return String(line!.containerId);
}

async function run(service: TestService, body: Record<string, unknown>) {
  const response = await service.post('/execute', body);
  expect(response.status, response.text).toBe(200);
  return response.json.data;
}

describeWithDocker('the warm pool', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ EXEC_POOL_SIZE: '2' });
    await service.pool.whenFull();
  });
  afterAll(async () => {
    await service?.close();
  });

  it('runs a job in a pooled container, once, and the next job gets another', async () => {
    const pooledBefore = await pooledIds(service);
    expect(pooledBefore).toHaveLength(2);

    const first = await run(service, { code: 'require("fs").writeFileSync("/tmp/left-behind", "x"); console.log("first")' });
    expect(first).toMatchObject({ stdout: 'first\n', code: 0 });
    const firstContainer = containerOf(service, first.executionId);
    expect(pooledBefore).toContain(firstContainer);

    await service.executor.settle();
    expect(await docker.listLabelled(ours(service))).not.toContain(firstContainer);

    const second = await run(service, { code: 'console.log(require("fs").existsSync("/tmp/left-behind"))' });
    expect(second.stdout).toBe('false\n');
    const secondContainer = containerOf(service, second.executionId);
    expect(secondContainer).not.toBe(firstContainer);
    expect(pooledBefore).toContain(secondContainer);
    expect(service.pool.stats()).toMatchObject({ warmRuns: 2, coldRuns: 0 });
  });

  it('refills in the background with fresh containers', async () => {
    await service.pool.whenFull();
    const before = await pooledIds(service);
    await run(service, { code: '1' });
    await service.pool.whenFull();
    await service.executor.settle();
    const after = await pooledIds(service);
    expect(after).toHaveLength(2);
    expect(after.filter((id) => !before.includes(id))).toHaveLength(1);
  });

  it('gives a pooled container no egress socket until a job is assigned', async () => {
    await service.pool.whenFull();
    const sandboxes = join(service.dataDir, 'sandboxes');
    const dirs = await readdir(sandboxes);
    expect(dirs.length).toBeGreaterThanOrEqual(2);
    for (const dir of dirs) expect(await readdir(join(sandboxes, dir))).not.toContain(PROXY_SOCKET_FILE);
  });

  it('counts the wall-clock limit from assignment, not from when the container started', async () => {
    await service.pool.whenFull();
    // Time passing is the point here, not a wait on something: the pooled container grows older than the job's limit.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const data = await run(service, { code: 'setTimeout(() => console.log("done"), 500)', timeoutMs: 2_000 });
    expect(data).toMatchObject({ stdout: 'done\n', timedOut: false });
  });
});

describeWithDocker('the warm pool with egress', () => {
  let world: SeedWorld;

  beforeAll(async () => {
    world = await startSeedWorld({ EXEC_POOL_SIZE: '1' });
    await world.service.pool.whenFull();
  });
  afterAll(async () => {
    await world?.close();
  });

  it('reaches an allowed HTTPS upstream through a pooled container (seed Test 2)', async () => {
    const data = await world.run({
      code: 'const https = require("https"); https.get("https://api.stripe.com/v1/products", r => console.log(r.statusCode));',
    });
    expectSeedScenario('stripeGet', data, world.upstream);
    expect(world.service.pool.stats()).toMatchObject({ warmRuns: 1, coldRuns: 0 });
  });

  it('hands a pooled sandbox the CA before its job, so the node started ahead of the job makes HTTPS calls', async () => {
    await world.service.pool.whenFull();
    await world.service.executor.settle();
    const pooled = await pooledIds(world.service);
    expect(pooled).toHaveLength(1);
    const sandboxId = world.service.logLines.find((l) => l.msg === 'container created' && l.containerId === pooled[0])?.sandboxId;
    expect(sandboxId).toEqual(expect.any(String));
    const egressDir = join(world.service.dataDir, 'sandboxes', String(sandboxId));
    expect(await readdir(egressDir)).toEqual([CA_CERT_FILE]);
    const ca = await readFile(join(world.service.dataDir, 'ca', 'ca.pem'), 'utf8');
    expect((await readFile(join(egressDir, CA_CERT_FILE), 'utf8')).trim()).toBe(ca.trim());

    await untilProgramWaits(pooled[0]);
    const { warmRuns } = world.service.pool.stats();
    const data = await world.run({
      code: [
        'const https = require("https");',
        // Runs in the node that required the agent's prelude before the job came, not a fresh one.
        'const startedAhead = require("fs").readFileSync("/proc/self/cmdline", "utf8").split("\\0").some((arg) => arg.endsWith("/prelude.js"));',
        'https.get("https://api.stripe.com/v1/products", r => console.log(r.statusCode, startedAhead));',
      ].join(' '),
    });
    expect(data.stdout).toBe('200 true\n');
    expect(world.service.pool.stats()).toMatchObject({ warmRuns: warmRuns + 1, coldRuns: 0 });
  });
});

describeWithDocker('pool size 0', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ EXEC_POOL_SIZE: '0' });
  });
  afterAll(async () => {
    await service?.close();
  });

  it('keeps no containers ahead of time and runs every job cold', async () => {
    expect(await pooledIds(service)).toEqual([]);
    const data = await run(service, { code: 'console.log("cold")' });
    expect(data.stdout).toBe('cold\n');
    const created = service.logLines.find((l) => l.msg === 'container created' && l['sandbox-egress.execution'] === data.executionId);
    expect(created?.containerId).toBe(containerOf(service, data.executionId));
    expect(service.pool.stats()).toMatchObject({ warmRuns: 0, coldRuns: 1 });
    expect(await pooledIds(service)).toEqual([]);
  });
});

describeWithDocker('closing a service with a full pool', () => {
  it('leaves no container behind, even with refills under way', async () => {
    const service = await startTestService({ EXEC_POOL_SIZE: '3' });
    await service.pool.whenFull();
    // Taking one starts a replacement, so close meets a container still being made.
    await run(service, { code: '1' });
    await service.close();
    expect(await docker.listLabelled(ours(service))).toEqual([]);
  });
});

describeWithDocker('a pooled container that dies before its job', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ EXEC_POOL_SIZE: '2' });
    await service.pool.whenFull();
  });
  afterAll(async () => {
    await service?.close();
  });

  const dropped = (containerId: string) => {
    const created = service.logLines.find((l) => l.msg === 'container created' && l.containerId === containerId);
    return service.logLines.some((l) => l.msg === 'pooled sandbox stopped before its job' && l.sandboxId === created?.sandboxId);
  };

  it('is dropped and replaced as soon as it dies, and jobs run elsewhere', async () => {
    const [victim] = await pooledIds(service);
    await docker.kill(victim);
    await expect.poll(() => dropped(victim), { timeout: 10_000 }).toBe(true);

    const data = await run(service, { code: 'console.log("still served")' });
    expect(data).toMatchObject({ stdout: 'still served\n', code: 0, timedOut: false });
    expect(containerOf(service, data.executionId)).not.toBe(victim);
    await service.pool.whenFull();
    await service.executor.settle();
    expect(await docker.listLabelled(ours(service))).not.toContain(victim);
  });

  it('does not cost a job its run when every pooled container was killed just before it', async () => {
    await service.pool.whenFull();
    const victims = await pooledIds(service);
    await Promise.all(victims.map((id) => docker.kill(id)));

    const data = await run(service, { code: 'console.log("ran once")' });
    expect(data).toMatchObject({ stdout: 'ran once\n', code: 0, signal: null, timedOut: false });
    await service.executor.settle();
    const left = await docker.listLabelled(ours(service));
    for (const id of victims) expect(left).not.toContain(id);
  });
});

describeWithDocker('a job whose policy allows a tool', () => {
  let world: SeedWorld;
  let jqUser: string;

  beforeAll(async () => {
    world = await startSeedWorld({ EXEC_POOL_SIZE: '1' }, { users: () => ({ 'jq-user': { allowedDomains: [], allowedBinaries: ['jq'] } }) });
    jqUser = await world.tokenFor('jq-user');
    await world.service.pool.whenFull();
  });
  afterAll(async () => {
    await world?.close();
  });

  it('runs cold and leaves the pooled container (which hides every tool) for a job it fits', async () => {
    const pooledBefore = await pooledIds(world.service);
    expect(pooledBefore).toHaveLength(1);

    const data = await world.run({ code: 'console.log(require("fs").existsSync("/opt/tools/jq/bin/jq"))' }, { token: jqUser });
    expect(data.stdout).toBe('true\n');
    expect(pooledBefore).not.toContain(containerOf(world.service, data.executionId));
    expect(world.service.pool.stats()).toMatchObject({ warmRuns: 0, coldRuns: 1 });
    expect(await pooledIds(world.service)).toEqual(pooledBefore);

    const fitting = await world.run({ code: 'console.log("pooled")' });
    expect(fitting.stdout).toBe('pooled\n');
    expect(containerOf(world.service, fitting.executionId)).toBe(pooledBefore[0]);
  });
});
