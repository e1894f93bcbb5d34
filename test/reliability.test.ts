/**
 * Reliability under load and faults, against the real engine: a burst of
 * concurrent requests, the policy API going away, the engine going away
 * and coming back, SIGTERM during an execution, and SIGKILL leaving an
 * orphan for the next start to remove.
 *
 * The engine "restart" is staged on a Unix socket this test owns, relaying
 * to the real engine (DOCKER_HOST points the server at it): restarting the
 * shared dockerd would kill the sandboxes of every other test on the
 * machine. Cutting the relay drops every connection to the engine, as a
 * restart does, and the server's containers are killed, as a restart
 * without live-restore does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DockerContainerClient, LABEL_INSTANCE, LABEL_MANAGED } from '../executor/index.ts';
import { instanceIdFor } from '../server/service.ts';
import { containersOf, startChildServer } from './support/child-server.ts';
import { eventually } from './support/eventually.ts';
import { describeWithDocker } from './support/docker.ts';
import { mintToken, startRecordingServer, TEST_AUDIENCE, TEST_HS_SECRET, TEST_ISSUER } from './support/jwt.ts';
import { startTestService, type TestService } from './support/service.ts';


const engineSocket = (): string => {
  const host = process.env.DOCKER_HOST;
  return host?.startsWith('unix://') ? host.slice('unix://'.length) : '/var/run/docker.sock';
};

/** A Unix socket relaying to the real engine, which the test can cut and restore. */
async function startEngineRelay(path: string) {
  const connections = new Set<net.Socket>();
  let server: net.Server | undefined;
  const listen = async () => {
    // Half-open: the server closes the program's stdin while its output still flows back.
    server = net.createServer({ allowHalfOpen: true }, (client) => {
      const engine = net.connect({ path: engineSocket(), allowHalfOpen: true });
      connections.add(client).add(engine);
      const drop = () => {
        client.destroy();
        engine.destroy();
        connections.delete(client);
        connections.delete(engine);
      };
      client.on('error', drop).on('close', drop);
      engine.on('error', drop).on('close', drop);
      client.pipe(engine).pipe(client);
    });
    await new Promise<void>((resolve) => server!.listen(path, resolve));
  };
  await listen();
  return {
    async cut() {
      await new Promise<void>((resolve) => {
        server!.close(() => resolve());
        for (const socket of connections) socket.destroy();
      });
    },
    restore: listen,
    close() {
      for (const socket of connections) socket.destroy();
      server?.close();
    },
  };
}

const tempDir = (prefix: string) => mkdtemp(join(tmpdir(), prefix));

describeWithDocker('reliability', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  describe('40 concurrent requests', () => {
    let service: TestService;
    beforeAll(async () => {
      service = await startTestService({ EXEC_MAX_CONCURRENT: '4', EXEC_QUEUE_LIMIT: '16' });
    });
    let closed = false;
    afterAll(async () => {
      if (!closed) await service?.close();
    });

    it('each gets its own correct result or is shed with 503/429 and Retry-After; no container is left', async () => {
      const responses = await Promise.all(
        Array.from({ length: 40 }, (_, i) => service.post('/execute', { code: `console.log(${i} * 2)`, timeoutMs: 60_000 })),
      );
      let ran = 0;
      responses.forEach((response, i) => {
        if (response.status === 200) {
          ran++;
          expect(response.json.data).toMatchObject({ stdout: `${i * 2}\n`, code: 0, timedOut: false });
        } else {
          expect([429, 503], response.text).toContain(response.status);
          expect(Number(response.headers.get('retry-after')), response.text).toBeGreaterThan(0);
        }
      });
      expect(ran).toBeGreaterThan(0);
      closed = true;
      await service.close();
      expect(await containersOf(service.dataDir)).toEqual([]);
    }, 240_000);
  });

  it('falls back to the default policy, with a reason, once the policy API goes down', async () => {
    const policyApi = await startRecordingServer({ allowedDomains: ['api.stripe.com'] });
    const service = await startTestService({
      JWT_SECRET: TEST_HS_SECRET,
      JWT_ISSUER: TEST_ISSUER,
      JWT_AUDIENCE: TEST_AUDIENCE,
      POLICY_API_URL: `${policyApi.url}/api/user/policies`,
      // Failures are never cached, successes are: a short lifetime makes the next request ask again.
      POLICY_CACHE_TTL_MS: '100',
      POLICY_FETCH_TIMEOUT_MS: '1000',
    });
    cleanups.push(() => service.close());
    const headers = { authorization: `Bearer ${await mintToken(TEST_HS_SECRET, { alg: 'HS256', sub: 'alice' })}` };

    const before = await service.post('/execute', { code: 'console.log(1)' }, headers);
    expect(before.status).toBe(200);
    expect(before.json.data.policyInfo).toMatchObject({ source: 'jwt', name: 'User Policy' });

    await policyApi.close();
    // Past the cached policy's 100 ms lifetime (a lifetime to outlast, not an event to wait on).
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (let i = 0; i < 2; i++) {
      const after = await service.post('/execute', { code: 'console.log(2)' }, headers);
      expect(after.status, after.text).toBe(200);
      expect(after.json.data.stdout).toBe('2\n');
      expect(after.json.data.policyInfo).toMatchObject({ source: 'default', name: 'Default Policy', reason: expect.any(String) });
    }
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(Number(/^sandbox_policy_fetch_failures_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  });

  it('survives the engine going away between two requests: the second succeeds or answers 503, the next succeeds', async () => {
    const dataDir = await tempDir('reliability-engine-');
    const relay = await startEngineRelay(join(dataDir, 'engine.sock'));
    cleanups.push(async () => {
      relay.close();
      await rm(dataDir, { recursive: true, force: true });
    });
    // A pooled sandbox that died with the engine is only noticed at its job's timeout; a short one keeps the test short.
    const server = await startChildServer({
      DATA_DIR: dataDir,
      DOCKER_HOST: `unix://${join(dataDir, 'engine.sock')}`,
      EXEC_POOL_SIZE: '1',
      EXEC_TIMEOUT_MS: '5000',
    });
    cleanups.push(() => server.kill());

    const first = await server.post('/execute', { code: 'console.log("first")' });
    expect(first.status, first.text).toBe(200);
    expect(first.json.data.stdout).toBe('first\n');

    // The restart: every connection to the engine drops, the server's containers die with it.
    await relay.cut();
    const docker = new DockerContainerClient({ socketPath: engineSocket() });
    const ours = await docker.listLabelled({ [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instanceIdFor(dataDir) });
    await Promise.all(ours.map((id) => docker.kill(id).catch(() => undefined)));
    const down = await server.post('/execute', { code: 'console.log("down")' });
    expect(down.status, down.text).toBe(503);
    expect(down.headers.get('retry-after')).toBeTruthy();
    await relay.restore();

    const second = await server.post('/execute', { code: 'console.log("second")' });
    if (second.status !== 200) {
      expect(second.status, second.text).toBe(503);
      expect(second.headers.get('retry-after')).toBeTruthy();
    } else {
      expect(second.json.data.stdout).toBe('second\n');
    }
    const third = await server.post('/execute', { code: 'console.log("third")' });
    expect(third.status, third.text).toBe(200);
    expect(third.json.data.stdout).toBe('third\n');

    server.process.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(await containersOf(dataDir)).toEqual([]);
  }, 120_000);

  it('on SIGTERM finishes the running execution, refuses new ones, and leaves no container', async () => {
    const dataDir = await tempDir('reliability-term-');
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const server = await startChildServer({ DATA_DIR: dataDir, SHUTDOWN_GRACE_MS: '30000' });
    cleanups.push(() => server.kill());

    const running = server.post('/execute', { code: 'setTimeout(() => console.log("finished"), 3000)' });
    expect(await eventually(() => server.logLines.some((l) => l.msg === 'sandbox assigned'))).toBe(true);
    server.process.kill('SIGTERM');

    expect(await eventually(() => Promise.resolve(server.logLines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('shutting down'))))).toBe(true);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: Record<string, string> }).checks.shutdown).toBe('draining');
    const refused = await server.post('/execute', { code: 'console.log(1)' });
    expect(refused.status).toBe(503);
    expect(refused.json.code).toBe('SHUTTING_DOWN');
    expect(refused.headers.get('retry-after')).toBeTruthy();

    const answer = await running;
    expect(answer.status, answer.text).toBe(200);
    expect(answer.json.data.stdout).toBe('finished\n');
    expect(await server.exited).toBe(0);
    expect(await containersOf(dataDir)).toEqual([]);
  }, 120_000);

  it('on SIGTERM past the grace period stops the execution, tells its caller, and leaves no container', async () => {
    const dataDir = await tempDir('reliability-grace-');
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const server = await startChildServer({ DATA_DIR: dataDir, SHUTDOWN_GRACE_MS: '1000', EXEC_POOL_SIZE: '0' });
    cleanups.push(() => server.kill());

    const running = server.post('/execute', { code: 'setTimeout(() => console.log("never"), 60000)', timeoutMs: 90_000 });
    expect(await eventually(async () => (await containersOf(dataDir)).length > 0)).toBe(true);
    expect(await eventually(() => server.logLines.some((l) => l.msg === 'sandbox assigned'))).toBe(true);
    server.process.kill('SIGTERM');

    const answer = await running;
    expect(answer.status, answer.text).toBe(503);
    expect(answer.json.code).toBe('SHUTTING_DOWN');
    expect(await server.exited).toBe(0);
    expect(await containersOf(dataDir)).toEqual([]);
  }, 120_000);

  it('after SIGKILL mid-execution, the next start removes the orphan', async () => {
    const dataDir = await tempDir('reliability-kill-');
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const first = await startChildServer({ DATA_DIR: dataDir, EXEC_POOL_SIZE: '0' });
    cleanups.push(() => first.kill());

    void first.post('/execute', { code: 'setTimeout(() => {}, 60000)', timeoutMs: 90_000 }).catch(() => undefined);
    expect(await eventually(async () => (await containersOf(dataDir)).length > 0)).toBe(true);
    await first.kill();
    const orphans = await containersOf(dataDir);
    expect(orphans.length).toBeGreaterThan(0);

    const second = await startChildServer({ DATA_DIR: dataDir, EXEC_POOL_SIZE: '0' });
    cleanups.push(() => second.kill());
    const remaining = await containersOf(dataDir);
    expect(remaining.filter((id) => orphans.includes(id))).toEqual([]);
    expect(second.logLines).toContainEqual(expect.objectContaining({ msg: 'removed containers left by an earlier run', removed: orphans.length }));

    second.process.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 120_000);
});
