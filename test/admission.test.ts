/**
 * Admission control through the real service: a bounded number of
 * executions at once, a bounded queue, and 503 with Retry-After beyond it.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithDocker } from './support/docker.ts';
import { eventually } from './support/eventually.ts';
import { startTestService, type TestService } from './support/service.ts';

const SLOW = { code: 'setTimeout(() => console.log("done"), 1500)', timeoutMs: 20_000 };

describeWithDocker('admission control', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ EXEC_MAX_CONCURRENT: '1', EXEC_QUEUE_LIMIT: '1', EXEC_QUEUE_TIMEOUT_MS: '15000' });
    await service.pool.whenFull();
  });
  afterAll(async () => {
    await service?.close();
  });

  it('runs one, queues one and refuses the third with 503 and Retry-After', async () => {
    const responses = await Promise.all([service.post('/execute', SLOW), service.post('/execute', SLOW), service.post('/execute', SLOW)]);
    const ok = responses.filter((r) => r.status === 200);
    const refused = responses.filter((r) => r.status === 503);
    expect(ok).toHaveLength(2);
    expect(refused).toHaveLength(1);
    expect(refused[0].json).toMatchObject({ success: false, code: 'QUEUE_FULL' });
    expect(Number(refused[0].headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    for (const r of ok) expect(r.json.data.stdout).toBe('done\n');
    const waits = ok.map((r) => r.json.data.queuedMs as number).sort((a, b) => a - b);
    expect(waits[0]).toBe(0);
    // The queued one waited for the first to finish its 1.5 s.
    expect(waits[1]).toBeGreaterThan(1000);
  });

  it('answers a request that cannot get a slot within half its timeout with 503, not a hang', async () => {
    const assigned = () => service.logLines.filter((line) => line.msg === 'sandbox assigned').length;
    const before = assigned();
    const first = service.post('/execute', SLOW);
    // The first holds the only slot once its sandbox is assigned.
    expect(await eventually(() => assigned() > before)).toBe(true);
    const second = await service.post('/execute', { code: '1', timeoutMs: 400 });
    expect(second.status).toBe(503);
    expect(second.json.code).toBe('QUEUE_TIMEOUT');
    expect(second.headers.get('retry-after')).toBeTruthy();
    expect((await first).status).toBe(200);
  });
});
